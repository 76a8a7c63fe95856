"""Interactive explorers for the notebooks (ipywidgets), each with a static fallback.

Every explorer is an object with `.widget` (the ipywidgets box), `.controls` (name ->
control), `.figure` (the picture for the current settings) and `.save(path)`.
Changing a control redraws the picture; tests and scripts can do the same by setting
a control's value, e.g. `explorer.controls["swap_depth"].value = 2`.

Showing one in a notebook (as a cell's last value) offers the front end both the
live widget and a PNG of the current picture: JupyterLab, Notebook, VS Code and
Colab show the widget; GitHub, nbviewer and HTML exports without widget state show
the PNG, so a rendered notebook never shows an empty box.
"""
from __future__ import annotations

import base64
import html
from functools import lru_cache

import numpy as np
from matplotlib.figure import Figure

from .errors import UserError
from .viz.common import png_bytes


class Explorer:
    """Controls, a status line and one picture that follows the controls."""

    title = ""

    def __init__(self, controls: dict, layout=None):
        import ipywidgets as w

        self.controls = controls
        self.picture = w.Image(format="png", layout=w.Layout(max_width="100%", height="auto"))
        self.status = w.HTML()
        self.figure = None
        self._png = b""
        header = w.HTML(f"<b>{html.escape(self.title)}</b>")
        self.widget = w.VBox([header, layout or w.HBox(list(controls.values())), self.status, self.picture])
        for control in controls.values():
            if hasattr(control, "value") and not isinstance(control, w.Button):
                control.observe(self._changed, names="value")

    def _changed(self, change) -> None:
        self.update()

    def draw(self) -> Figure:
        raise NotImplementedError

    def update(self) -> None:
        """Redraw for the current control values; a user mistake becomes a red status line."""
        try:
            figure = self.draw()
        except (UserError, ValueError) as error:
            self.status.value = f"<span style='color:#b2182b'>{html.escape(str(error))}</span>"
            return
        self.status.value = ""
        self.figure = figure
        self._png = png_bytes(figure)
        self.picture.value = self._png

    def save(self, path) -> Figure:
        from .viz.common import finish
        return finish(self.figure, path)

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = {"text/plain": f"<{type(self).__name__}: {self.title}>"}
        if self._png:
            bundle["image/png"] = base64.b64encode(self._png).decode("ascii")
        bundle.update(self.widget._repr_mimebundle_() or {})
        return bundle


# ----------------------------------------------------------------- swap depth explorer
@lru_cache(maxsize=16)
def _counts(config) -> dict:
    """complexity() of a config; queries swapping changes no weight, so depth sets the counts."""
    from . import complexity
    from .models import build_model
    return complexity(build_model(config))


def _millions(n) -> str:
    return f"{n / 1e6:.2f}M"


class SwapDepthExplorer(Explorer):
    """Sliders for depth and swap_depth: which blocks swap, the sizes, and (with a trained
    model and a face) where the class tokens look when its blocks swap or not."""

    title = "Swap-depth explorer: how many blocks swap queries between the streams?"

    def __init__(self, model=None, image=None, preset: str = "poster-l", channel_order=None):
        import ipywidgets as w
        from .config import make_config

        self.model, self.image, self.channel_order = model, image, channel_order
        self.base = model.config if model is not None else make_config(preset)
        depth = w.IntSlider(value=self.base.depth, min=1, max=max(8, self.base.depth), description="depth")
        swap = w.IntSlider(value=self.base.swap_blocks, min=0, max=self.base.depth, description="swap_depth")
        stream = w.ToggleButtons(options=[("keys: landmark tokens", "lm"), ("keys: image tokens", "img")],
                                 value="lm", description="attention")
        controls = dict(depth=depth, swap_depth=swap)
        if model is not None and image is not None and not self.base.image_only:
            controls["stream"] = stream
        depth.observe(self._depth_changed, names="value")
        super().__init__(controls)
        self.update()

    def _depth_changed(self, change) -> None:
        # Keep swap_depth within 0..depth; when it must shrink, its own callback redraws.
        self.controls["swap_depth"].max = change["new"]

    def config(self):
        from dataclasses import replace
        depth = self.controls["depth"].value
        return replace(self.base, depth=depth, swap_depth=min(self.controls["swap_depth"].value, depth))

    def _attention(self, into, swap_depth: int):
        """The trained model's maps with its blocks' swap flags set as the slider says, then restored."""
        from .viz.attention import compute_attention, plot_attention_overview

        levels = [level for block in self.model.fusion.blocks for level in block.levels]
        saved = [level.swap for level in levels]
        try:
            for b, block in enumerate(self.model.fusion.blocks):
                for level in block.levels:
                    level.swap = b < swap_depth
            result = compute_attention(self.model, self.image, self.channel_order)
        finally:
            for level, flag in zip(levels, saved):
                level.swap = flag
        plot_attention_overview(result, stream=self.controls["stream"].value, into=into)

    def draw(self) -> Figure:
        from .viz.architecture import draw_block_schedule

        config = self.config()
        counts = _counts(config)
        parts = counts["parts"]
        text = (f"params {_millions(counts['params'])} (transformer {_millions(parts['transformer']['params'])}), "
                f"FLOPs {counts['flops'] / 1e9:.2f}G (transformer {parts['transformer']['flops'] / 1e9:.2f}G)\n"
                f"swapping queries adds no weights")
        with_attention = "stream" in self.controls
        width = max(6.5, 1.1 * config.depth + 1, 1.9 * self.model.config.depth + 1.5 if with_attention else 0)
        fig = Figure(figsize=(width, 2.8 + (6.2 if with_attention else 0)), layout="constrained")
        top, bottom = (fig.subfigures(2, 1, height_ratios=[2.8, 6.2]) if with_attention else (fig, None))
        ax = top.subplots()
        draw_block_schedule(ax, config)
        ax.set_title(f"depth {config.depth}, swap_depth {config.swap_blocks}: {text}", fontsize=9)
        if with_attention:
            trained = self.model.config
            used = min(config.swap_blocks, trained.depth)
            self._attention(bottom, used)
            bottom.supxlabel(f"the trained model (depth {trained.depth}, trained with swap_depth "
                             f"{trained.swap_blocks})\nrun with its first {used} block(s) swapping: "
                             f"same weights, other queries", fontsize=9)
        return fig


# ------------------------------------------------------------------- pyramid explorer
PAPER_PYRAMID = {1: (91.63, 85.01), 2: (91.77, 85.49), 3: (92.05, 86.03), 4: (92.04, 85.97)}


class PyramidExplorer(Explorer):
    """Checkboxes for the pyramid levels: the level shapes, sizes, and the paper's Table 1."""

    title = "Pyramid explorer: which embedding sizes run side by side?"

    def __init__(self, preset: str = "poster-l", size_presets=("image-only", "poster-t", "poster-s", "poster-l"),
                 **overrides):
        """`size_presets`: the rows of the size table (building and counting each takes a few
        seconds on a CPU); None leaves the table out."""
        import ipywidgets as w
        from .config import make_config

        self.base = make_config(preset, **overrides)
        top = self.base.embed_dim
        self.sizes = [top // 2 ** k for k in range(4) if top // 2 ** k >= self.base.num_heads]
        boxes = {f"dim {d}": w.Checkbox(value=d in self.base.pyramid_dims, description=f"{d}", indent=False,
                                        disabled=(d == top), layout=w.Layout(width="80px"))
                 for d in self.sizes}
        self.size_presets = size_presets
        self.size_html = w.HTML()
        super().__init__(boxes, layout=w.VBox([w.HBox([w.Label("levels (the largest always runs):"),
                                                       *boxes.values()]), self.size_html]))
        self.update()

    def dims(self) -> tuple:
        return tuple(d for d in self.sizes if self.controls[f"dim {d}"].value)

    @property
    def size_table(self):
        """The supplement's Tables 3 and 4 next to our counts (computed on first use; None without presets)."""
        if not self.size_presets:
            return None
        if not hasattr(self, "_size_table"):
            from . import size_table
            self._size_table = size_table(self.size_presets, show=False)
        return self._size_table

    def draw(self) -> Figure:
        from dataclasses import replace

        from .viz.architecture import plot_pyramid

        config = replace(self.base, pyramid_dims=self.dims()).validate()
        counts = _counts(config)
        transformer = counts["parts"]["transformer"]
        paper = PAPER_PYRAMID.get(len(config.pyramid_dims)) if config.embed_dim == 512 else None
        caption = (f"params {_millions(counts['params'])}, transformer {_millions(transformer['params'])}; "
                   f"FLOPs {counts['flops'] / 1e9:.2f}G, transformer {transformer['flops'] / 1e9:.2f}G")
        if paper and config.pyramid_dims == tuple(512 // 2 ** k for k in range(len(config.pyramid_dims))):
            caption += f"\npaper, Table 1 (RAF-DB): accuracy {paper[0]:.2f}, mean class accuracy {paper[1]:.2f}"
        table = self.size_table
        diagram_height = 0.95 * len(config.pyramid_dims) + 1.6
        if table is None:
            return plot_pyramid(config, caption)
        self.size_html.value = table.to_html(float_format=lambda v: f"{v:.2f}")
        table_height = 0.32 * len(table) + 0.8
        fig = Figure(figsize=(9.5, diagram_height + table_height), layout="constrained")
        upper, lower = fig.subfigures(2, 1, height_ratios=[diagram_height, table_height])
        plot_pyramid(config, caption, into=upper)
        _draw_size_table(lower, table)
        return fig


def _draw_size_table(subfigure, table) -> None:
    ax = subfigure.subplots()
    ax.axis("off")
    wanted = ["params (M)", "FLOPs (G)", "transformer params (M)"]
    columns = [(top, side) for top, side in table.columns if top in wanted]
    cells = [[_cell(table.loc[name, col]) for col in columns] for name in table.index]
    shown = ax.table(cellText=cells, rowLabels=list(table.index), colLabels=[f"{t}\n{s}" for t, s in columns],
                     loc="center", cellLoc="center")
    shown.auto_set_font_size(False)
    shown.set_fontsize(8)
    shown.scale(1, 1.5)
    ax.set_title("Size table (supplement Tables 3 and 4; ours counted on one image)", fontsize=9)


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{value:.2f}" if isinstance(value, (float, np.floating)) else str(value)


# --------------------------------------------------------------------- face designer
class FaceDesigner(Explorer):
    """Sliders for the action units, identity and pose of a SynthFER face, with a live prediction."""

    title = "Face designer: move the action units, watch the face (and the model)"

    def __init__(self, model=None, size: int = 112, channel_order=None):
        import ipywidgets as w
        from .data.synthfer import ACTION_UNITS

        try:
            from .data.face_geometry import AU_DESCRIPTIONS
        except ImportError:
            AU_DESCRIPTIONS = {}
        self.model, self.size, self.channel_order = model, size, channel_order
        style = {"description_width": "150px"}
        units = {au: w.FloatSlider(value=0.0, min=0.0, max=1.5, step=0.05, style=style,
                                   description=f"{au} {AU_DESCRIPTIONS.get(au, '')}".strip(),
                                   continuous_update=False)
                 for au in ACTION_UNITS}
        person = dict(
            identity=w.IntSlider(value=0, min=0, max=199, description="identity", continuous_update=False),
            roll=w.FloatSlider(value=0, min=-25, max=25, step=1, description="roll (deg)", continuous_update=False),
            yaw=w.FloatSlider(value=0, min=-25, max=25, step=1, description="yaw (deg)", continuous_update=False),
            scale=w.FloatSlider(value=1.0, min=0.8, max=1.2, step=0.02, description="scale", continuous_update=False),
            landmarks=w.Checkbox(value=True, description="show landmarks"),
        )
        self.unit_names = list(units)
        layout = w.HBox([w.VBox(list(units.values())), w.VBox(list(person.values()))])
        super().__init__({**units, **person}, layout=layout)
        self.update()

    def face(self):
        """(RGB image, 68 x 2 landmarks) for the current sliders."""
        from .data.synthfer import draw_face

        c = self.controls
        units = {au: c[au].value for au in self.unit_names if c[au].value > 0}
        pose = dict(roll=c["roll"].value, yaw=c["yaw"].value, scale=c["scale"].value)
        return draw_face(units, identity=c["identity"].value, pose=pose, size=self.size)

    def draw(self) -> Figure:
        import torch

        from .viz.common import class_names, model_input
        from .viz.faces import draw_landmarks

        image, landmarks = self.face()
        panels = 2 if self.model is not None else 1
        fig = Figure(figsize=(4.0 * panels + 0.6, 4.0), layout="constrained")
        axes = fig.subplots(1, panels, squeeze=False)[0]
        axes[0].imshow(image)
        axes[0].axis("off")
        if self.controls["landmarks"].value:
            draw_landmarks(axes[0], landmarks, marker_size=6)
        active = ", ".join(f"{au} {self.controls[au].value:.2f}" for au in self.unit_names if self.controls[au].value)
        axes[0].set_title(active or "neutral face (all AUs 0)", fontsize=8, wrap=True)
        if self.model is not None:
            batch, _ = model_input(self.model, image, self.channel_order)
            was_training = self.model.training
            self.model.eval()
            try:
                with torch.no_grad():
                    probabilities = torch.softmax(self.model(batch)[0].float(), -1).cpu().numpy()
            finally:
                self.model.train(was_training)
            names = class_names(self.model, len(probabilities))
            best = int(np.argmax(probabilities))
            axes[1].barh(names, probabilities, color=["#08519c" if k == best else "#9ecae1" for k in range(len(names))])
            axes[1].invert_yaxis()
            axes[1].set_xlim(0, 1)
            axes[1].set_xlabel("probability")
            axes[1].set_title(f"model says: {names[best]} ({probabilities[best]:.0%})", fontsize=10)
        return fig


# ------------------------------------------------------------------ upload and predict
def in_colab() -> bool:
    try:
        import google.colab  # noqa: F401
    except ImportError:
        return False
    return True


def webcam_snapshot(quality: float = 0.9):
    """One webcam frame as a PIL image. Colab only: it alone lets Python ask the browser
    for a value (other front ends have no standard way to return a camera frame)."""
    if not in_colab():
        raise UserError("webcam snapshots work in Google Colab only; elsewhere take a photo and upload it")
    from google.colab.output import eval_js

    script = """
    async function snapshot(quality) {
      const stream = await navigator.mediaDevices.getUserMedia({video: true});
      const video = document.createElement('video');
      video.srcObject = stream;
      await video.play();
      await new Promise(resolve => setTimeout(resolve, 600));   // let exposure settle
      const canvas = document.createElement('canvas');
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
      canvas.getContext('2d').drawImage(video, 0, 0);
      stream.getTracks().forEach(track => track.stop());
      return canvas.toDataURL('image/jpeg', quality);
    }
    """
    data_url = eval_js(script + f"snapshot({quality})")
    from .data.images import read_image
    return read_image(base64.b64decode(data_url.split(",", 1)[1]), name="the webcam snapshot")


class UploadPredictor(Explorer):
    """Upload photos (or, in Colab, take a webcam snapshot); see faces, boxes and probabilities."""

    title = "Upload and predict: which expression does the model see?"

    def __init__(self, model=None, checkpoint=None, detect_faces: bool = True):
        import ipywidgets as w

        if model is None and checkpoint is None:
            raise UserError("UploadPredictor needs a model or a checkpoint path")
        if model is None:       # load once, not on every upload
            from .checkpoint import load_checkpoint
            model = load_checkpoint(checkpoint)
        self.model = model
        self.images, self.results = [], []
        controls = dict(upload=w.FileUpload(accept="image/*", multiple=True, description="Upload photos"),
                        detect=w.Checkbox(value=detect_faces, indent=False,
                                          description="find faces (off: the whole photo is one face)"))
        if in_colab():
            controls["webcam"] = w.Button(description="Webcam snapshot", icon="camera")
            controls["webcam"].on_click(self._snapshot)
        super().__init__(controls)
        self.status.value = "Choose one or more photos." + (
            "" if in_colab() else " (Webcam snapshots need Google Colab; here, upload a photo.)")

    def _snapshot(self, _button) -> None:
        try:
            self.predict_images([webcam_snapshot()], ["webcam"])
        except Exception as error:      # no camera, permission refused: say so, keep the widget alive
            self.status.value = f"<span style='color:#b2182b'>webcam: {html.escape(str(error))}</span>"

    def _changed(self, change) -> None:
        from .data.images import read_image

        if change["owner"] is self.controls["detect"]:
            if self.images:
                self.predict_images(self.images, [r["source"] for r in self.results])
            return
        images, names = [], []
        for item in change["new"]:
            try:
                images.append(read_image(bytes(item["content"]), name=item.get("name", "the upload")))
                names.append(item.get("name", "upload"))
            except UserError as error:      # not an image, truncated, too large or too small: say which
                self.status.value = f"<span style='color:#b2182b'>{html.escape(str(error))}</span>"
                return
        if images:
            self.predict_images(images, names)

    def predict_images(self, images, names=None) -> list:
        """Run `poster_lite.predict` on these images and redraw; returns its results."""
        from .predict import predict

        self.images = list(images)
        self.results = predict(self.images, model=self.model, detect_faces=self.controls["detect"].value)
        for result, name in zip(self.results, names or []):
            result["source"] = name
        self.update()
        return self.results

    def draw(self) -> Figure:
        from .viz.predictions import plot_predictions

        if not self.images:
            raise ValueError("no photo yet: upload one")
        return plot_predictions(self.images, self.results)


# ------------------------------------------------------------- confusion-matrix explorer
class ConfusionExplorer(Explorer):
    """Pick a cell of the confusion matrix (true, predicted) and see the faces in it."""

    title = "Confusion-matrix explorer: which faces landed in this cell?"

    def __init__(self, dataset, results, n: int = 12, channel_order: str = "rgb"):
        import ipywidgets as w

        from .viz.common import class_names

        self.dataset, self.results, self.n, self.channel_order = dataset, results, n, channel_order
        self.classes = list(results.get("classes") or class_names(dataset, len(results["confusion"])))
        confusion = np.asarray(results["confusion"], dtype=float)
        off_diagonal = confusion - np.diag(np.diag(confusion))
        true, predicted = np.unravel_index(int(np.argmax(off_diagonal)), confusion.shape)
        options = [(name, k) for k, name in enumerate(self.classes)]
        super().__init__(dict(true=w.Dropdown(options=options, value=int(true), description="true"),
                              predicted=w.Dropdown(options=options, value=int(predicted), description="predicted")))
        self.update()

    def draw(self) -> Figure:
        from matplotlib.patches import Rectangle

        from .viz.confusion import draw_confusion, row_normalise
        from .viz.gallery import cell_indices, plot_confusion_cell

        true, predicted = self.controls["true"].value, self.controls["predicted"].value
        n = len(self.classes)
        shown = min(len(cell_indices(self.results, true, predicted)), self.n)
        cols = max(1, min(6, shown))
        rows = max(1, -(-shown // cols))
        matrix_width, gallery_width = 0.55 * n + 2.6, 2.05 * cols + 0.3
        fig = Figure(figsize=(matrix_width + gallery_width, max(0.55 * n + 2.0, 2.8 * rows + 0.5)),
                     layout="constrained")
        left, right = fig.subfigures(1, 2, width_ratios=[matrix_width, gallery_width])
        ax = left.subplots()
        draw_confusion(ax, row_normalise(self.results["confusion"]), self.classes,
                       "row-normalised (%); chosen cell boxed", colorbar=False)
        ax.add_patch(Rectangle((predicted, true), 1, 1, fill=False, edgecolor="#e6550d", linewidth=3))
        plot_confusion_cell(self.dataset, self.results, true, predicted, self.n, ncols=6,
                            classes=self.classes, channel_order=self.channel_order, into=right)
        return fig


# Lower-case spellings, for notebooks that read better with a function call.
def swap_depth_explorer(model=None, image=None, preset: str = "poster-l", channel_order=None) -> SwapDepthExplorer:
    return SwapDepthExplorer(model, image, preset, channel_order)


def pyramid_explorer(preset: str = "poster-l", size_presets=("image-only", "poster-t", "poster-s", "poster-l"),
                     **overrides) -> PyramidExplorer:
    return PyramidExplorer(preset, size_presets, **overrides)


def face_designer(model=None, size: int = 112, channel_order=None) -> FaceDesigner:
    return FaceDesigner(model, size, channel_order)


def upload_and_predict(model=None, checkpoint=None, detect_faces: bool = True) -> UploadPredictor:
    return UploadPredictor(model, checkpoint, detect_faces)


def confusion_explorer(dataset, results, n: int = 12, channel_order: str = "rgb") -> ConfusionExplorer:
    return ConfusionExplorer(dataset, results, n, channel_order)


__all__ = ["Explorer", "SwapDepthExplorer", "PyramidExplorer", "FaceDesigner", "UploadPredictor",
           "ConfusionExplorer", "webcam_snapshot", "in_colab", "swap_depth_explorer", "pyramid_explorer",
           "face_designer", "upload_and_predict", "confusion_explorer"]
