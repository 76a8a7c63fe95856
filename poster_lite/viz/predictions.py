"""What `poster_lite.predict` found in a photo: boxes, labels and probability bars."""
from __future__ import annotations

import numpy as np
from matplotlib.patches import Rectangle

from .common import as_image, finish, new_figure

FACE_COLOURS = ["#e6550d", "#3182bd", "#31a354", "#756bb1", "#de2d26", "#636363"]


def plot_predictions(images, results, into=None, save=None):
    """One row per image: the photo with a box per face, and each face's class probabilities.

    `images`: the images given to `predict` (arrays, PIL images or paths); `results`:
    what `predict` returned for them, in the same order.
    """
    from PIL import Image

    if len(images) != len(results):
        raise ValueError(f"{len(images)} images but {len(results)} prediction results")
    fig, axes = new_figure(len(images), 2, (10, 3.8 * len(images)), into, gridspec_kw=dict(width_ratios=[1, 1.15]))
    for (photo_ax, bar_ax), image, result in zip(axes, images, results):
        picture = as_image(Image.open(image) if isinstance(image, (str, bytes)) or hasattr(image, "__fspath__")
                           else image)
        photo_ax.imshow(picture)
        photo_ax.axis("off")
        photo_ax.set_title(str(result.get("source", ""))[-48:], fontsize=8)
        faces = result.get("faces") or []
        if not faces:
            bar_ax.axis("off")
            bar_ax.text(0.5, 0.5, result.get("message") or "no face found", ha="center", va="center", fontsize=11)
            continue
        names = list(faces[0]["probabilities"])
        height = 0.8 / len(faces)
        for k, face in enumerate(faces):
            colour = FACE_COLOURS[k % len(FACE_COLOURS)]
            x0, y0, x1, y1 = face["box"]
            photo_ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color=colour, linewidth=2))
            photo_ax.text(x0, y0, f" {k + 1}: {face['label']} {face['probability']:.0%}", color="white",
                          fontsize=8, va="bottom", bbox=dict(fc=colour, ec="none", pad=1.5))
            values = [face["probabilities"][name] for name in names]
            positions = np.arange(len(names)) - 0.4 + height * (k + 0.5)
            bar_ax.barh(positions, values, height, color=colour, label=f"face {k + 1}")
        bar_ax.set_yticks(np.arange(len(names)), names, fontsize=8)
        bar_ax.invert_yaxis()
        bar_ax.set_xlim(0, 1)
        bar_ax.set_xlabel("probability")
        bar_ax.grid(axis="x", alpha=0.3)
        if len(faces) > 1:
            bar_ax.legend(fontsize=8)
    return finish(fig, save)
