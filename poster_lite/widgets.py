"""Interactive explorers for the notebooks (ipywidgets), each with a static fallback.

Every explorer is an object with `.widget` (the ipywidgets box), `.controls` (name ->
control), `.figure` (the picture for the current settings) and `.save(path)`.
Changing a control redraws the picture; tests and scripts can do the same by setting
a control's value, e.g. `explorer.controls["swap_depth"].value = 2`.

Showing one in a notebook (as a cell's last value) offers the front end both the
live widget and a PNG of the current picture: JupyterLab, Notebook, VS Code and
Colab show the widget; GitHub, nbviewer and HTML exports without widget state show
the PNG, so a rendered notebook never shows an empty box.

The picture is shown at its natural size (one PNG pixel per screen pixel), never
stretched or squeezed to the output's width: a wider picture scrolls sideways. Only
APIs that ipywidgets 7 and 8 share are used (Colab has long shipped 7).
"""
from __future__ import annotations

import base64
import html
from contextlib import contextmanager
from functools import lru_cache

import numpy as np
from matplotlib.figure import Figure

from .errors import UserError
from .viz.common import png_bytes


def png_size(png: bytes) -> tuple:
    """(width, height) in pixels, read from a PNG's header chunk."""
    if not png.startswith(b"\x89PNG"):
        raise ValueError("not a PNG")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _widget_view(widget) -> dict:
    """The mime bundle that makes a front end draw `widget` (ipywidgets 8 and 7)."""
    if hasattr(widget, "_repr_mimebundle_"):               # ipywidgets 8
        return widget._repr_mimebundle_() or {}
    # ipywidgets 7 displays through _ipython_display_, which sends this bundle
    return {"application/vnd.jupyter.widget-view+json":
            {"version_major": 2, "version_minor": 0, "model_id": widget.model_id}}


class Explorer:
    """Controls, a status line and one picture that follows the controls."""

    title = ""

    def __init__(self, controls: dict, layout=None):
        import ipywidgets as w

        self.controls = controls
        # A flex column stretches its children to its width, which blew small pictures up
        # and squeezed wide ones: the picture gets its own pixel size (set in update) and
        # sits in a box that scrolls when the picture is wider than the output.
        self.picture = w.Image(format="png", layout=w.Layout(flex="0 0 auto", align_self="flex-start",
                                                             max_width="none", max_height="none"))
        self.frame = w.Box([self.picture], layout=w.Layout(overflow="auto", max_width="100%"))
        self.status = w.HTML()
        self.figure = None
        self._png = b""
        header = w.HTML(f"<b>{html.escape(self.title)}</b>")
        self.widget = w.VBox([header, layout or w.HBox(list(controls.values())), self.status, self.frame])
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
        width, height = png_size(self._png)
        self.picture.width, self.picture.height = str(width), str(height)
        self.picture.layout.width, self.picture.layout.height = f"{width}px", f"{height}px"
        self.picture.value = self._png

    def save(self, path) -> Figure:
        from .viz.common import finish
        return finish(self.figure, path)

    def _repr_mimebundle_(self, include=None, exclude=None):
        bundle = {"text/plain": f"<{type(self).__name__}: {self.title}>"}
        if self._png:
            bundle["image/png"] = base64.b64encode(self._png).decode("ascii")
        bundle.update(_widget_view(self.widget))
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


@contextmanager
def rewired(model, swap_depth: int):
    """Run `model` with only its first `swap_depth` blocks swapping queries; restore its flags after.

    The swap changes no weight, so the same trained weights run with other queries."""
    levels = [(b, level) for b, block in enumerate(model.fusion.blocks) for level in block.levels]
    saved = [level.swap for _, level in levels]
    try:
        for b, level in levels:
            level.swap = b < swap_depth and not model.config.image_only
        yield model
    finally:
        for (_, level), flag in zip(levels, saved):
            level.swap = flag


def shipped_swap_ablation(path) -> dict | None:
    """The swap-depth rows of an ablation grid file (`pl.shipped.ablation_results_file()`):
    {"accuracy": {swap_depth: [test accuracy per seed]}, "depth", "n_test", "file"}; None
    when the file is missing or has no such rows."""
    import json
    from pathlib import Path

    if path is None or not Path(path).exists():
        return None
    grid = json.loads(Path(path).read_text())
    accuracy, depths = {}, set()
    for run in grid.get("runs", []):
        k = run.get("ablations", {}).get("swap_depth")
        if k is not None:
            accuracy.setdefault(int(k), []).append(float(run["test_accuracy"]))
            depths.add(run.get("overrides", {}).get("depth"))
    if not accuracy:
        return None
    return dict(accuracy=dict(sorted(accuracy.items())), depth=depths.pop() if len(depths) == 1 else None,
                n_test=grid.get("settings", {}).get("n_test"), file=Path(path).name,
                backbones=grid.get("settings", {}).get("backbones", ""))


class SwapDepthExplorer(Explorer):
    """Sliders for depth and swap_depth: which blocks swap and the sizes; with a trained model
    and a face, what rewiring that model changes: its attention, its prediction on the face
    and (given a test set) its accuracy at every swap depth, beside the accuracy of models
    trained at that swap depth (the shipped ablation grid, given its file)."""

    title = "Swap-depth explorer: how many blocks swap queries between the streams?"

    def __init__(self, model=None, image=None, preset: str = "poster-l", channel_order=None,
                 test_set=None, n_faces: int = 300, ablations=None):
        """`test_set`: (image, label) pairs to score the rewired model on (its first `n_faces`
        of a fixed random order); `ablations`: the path of an ablation grid file."""
        import ipywidgets as w

        from .config import make_config

        self.model, self.image, self.channel_order = model, image, channel_order
        self.base = model.config if model is not None else make_config(preset)
        self.test_set, self.n_faces = test_set, n_faces
        self.shipped = shipped_swap_ablation(ablations)
        self.accuracies = {}            # swap depth -> accuracy of the rewired model (computed once each)
        self._scored = None             # (inputs, targets) of the faces it is scored on
        self._as_trained = None         # probabilities on the face with the model's own wiring
        depth = w.IntSlider(value=self.base.depth, min=1, max=max(8, self.base.depth), description="depth")
        swap = w.IntSlider(value=self.base.swap_blocks, min=0, max=self.base.depth, description="swap_depth")
        stream = w.ToggleButtons(options=[("keys: landmark tokens", "lm"), ("keys: image tokens", "img")],
                                 value="lm", description="attention")
        controls = dict(depth=depth, swap_depth=swap)
        if self.with_model and not self.base.image_only:
            controls["stream"] = stream
        depth.observe(self._depth_changed, names="value")
        super().__init__(controls)
        self.update()

    @property
    def with_model(self) -> bool:
        return self.model is not None and self.image is not None

    def _depth_changed(self, change) -> None:
        # Keep swap_depth within 0..depth; when it must shrink, its own callback redraws.
        self.controls["swap_depth"].max = change["new"]

    def config(self):
        from dataclasses import replace
        depth = self.controls["depth"].value
        return replace(self.base, depth=depth, swap_depth=min(self.controls["swap_depth"].value, depth))

    @property
    def n_scored(self) -> int:
        """How many test faces the accuracies are measured on (0 without a test set)."""
        return 0 if self.test_set is None else min(self.n_faces, len(self.test_set))

    def used_swap_depth(self) -> int:
        """The swap depth the trained model runs with: the slider's, at most its own depth."""
        return min(self.config().swap_blocks, self.model.config.depth)

    # -- what the rewired model does
    def _faces(self):
        import torch

        from .data.transforms import eval_transform
        from .viz.common import channel_order_of

        if self._scored is None:
            n = min(self.n_faces, len(self.test_set))
            order = np.random.default_rng(0).permutation(len(self.test_set))[:n]
            transform = eval_transform(self.model.config.input_size, channel_order_of(self.model, self.channel_order))
            pairs = [self.test_set[int(i)] for i in order]
            self._scored = (torch.stack([transform(image) if not isinstance(image, torch.Tensor) else image
                                         for image, _ in pairs]),
                            torch.tensor([int(label) for _, label in pairs]))
        return self._scored

    def accuracy_at(self, swap_depth: int) -> float:
        """Accuracy of the trained model rewired to `swap_depth` on the scored faces (cached)."""
        import torch

        if swap_depth not in self.accuracies:
            inputs, targets = self._faces()
            device = next(self.model.parameters()).device
            was_training = self.model.training
            self.model.eval()
            correct = 0
            try:
                with rewired(self.model, swap_depth), torch.no_grad():
                    for start in range(0, len(inputs), 100):
                        logits = self.model(inputs[start:start + 100].to(device))
                        correct += int((logits.argmax(-1).cpu() == targets[start:start + 100]).sum())
            finally:
                self.model.train(was_training)
            self.accuracies[swap_depth] = correct / len(targets)
        return self.accuracies[swap_depth]

    def accuracy_at_every_depth(self) -> dict:
        """Score every swap depth 0..the model's depth (each once), redraw, return {depth: accuracy}."""
        for k in range(self.model.config.depth + 1):
            self.accuracy_at(k)
        self.update()
        return dict(sorted(self.accuracies.items()))

    def _attention(self, swap_depth: int):
        from .viz.attention import compute_attention

        if self._as_trained is None:
            self._as_trained = compute_attention(self.model, self.image, self.channel_order).probabilities
        with rewired(self.model, swap_depth):
            return compute_attention(self.model, self.image, self.channel_order)

    # -- the picture
    def draw(self) -> Figure:
        from .viz.architecture import draw_block_schedule

        config = self.config()
        counts = _counts(config)
        parts = counts["parts"]
        text = (f"params {_millions(counts['params'])} (transformer {_millions(parts['transformer']['params'])}), "
                f"FLOPs {counts['flops'] / 1e9:.2f}G (transformer {parts['transformer']['flops'] / 1e9:.2f}G)\n"
                f"swapping queries adds no weights")
        if not self.with_model:
            fig = Figure(figsize=(max(6.5, 1.1 * config.depth + 1), 2.8), layout="constrained")
            ax = fig.subplots()
            draw_block_schedule(ax, config)
            ax.set_title(f"depth {config.depth}, swap_depth {config.swap_blocks}: {text}", fontsize=9)
            return fig
        from .viz.attention import plot_attention_overview

        trained = self.model.config
        used = self.used_swap_depth()
        result = self._attention(used)
        rows = trained.depth * len(trained.pyramid_dims)
        attention_height = max(3.2, 0.3 * rows + 1.8) if "stream" in self.controls else 0
        heights = [2.0] + ([attention_height] if attention_height else []) + [3.1]
        fig = Figure(figsize=(10.0, sum(heights) + 0.5), layout="constrained")
        parts_ = fig.subfigures(len(heights), 1, height_ratios=heights)
        ax = parts_[0].subplots()
        draw_block_schedule(ax, config)
        ax.set_title(f"depth {config.depth}, swap_depth {config.swap_blocks}: {text}", fontsize=9)
        if attention_height:
            plot_attention_overview(result, stream=self.controls["stream"].value, into=parts_[1])
        left, right = parts_[-1].subfigures(1, 2, width_ratios=[1, 1.25])
        self._draw_probabilities(left.subplots(), result, used)
        self._draw_accuracies(right.subplots(), used)
        fig.supxlabel(f"the trained model (depth {trained.depth}, trained with swap_depth {trained.swap_blocks}) "
                      f"run with its first {used} block(s) swapping: same weights, other queries", fontsize=9)
        return fig

    def _draw_probabilities(self, ax, result, used: int) -> None:
        names = result.classes
        y = np.arange(len(names))
        best = int(np.argmax(result.probabilities))
        ax.barh(y, result.probabilities, color=["#08519c" if k == best else "#9ecae1" for k in y],
                label=f"rewired: swap_depth {used}")
        ax.scatter(self._as_trained, y, marker="|", s=180, color="black", zorder=3,
                   label=f"as trained (swap_depth {self.model.config.swap_blocks})")
        ax.set_yticks(y, names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("probability", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.legend(fontsize=7, loc="lower right")
        ax.set_title(f"this face: predicts {result.prediction}", fontsize=9)

    def _draw_accuracies(self, ax, used: int) -> None:
        trained = self.model.config
        if self.test_set is not None:
            self.accuracy_at(used)
        chance = 100 / trained.num_classes
        if self.accuracies:
            depths = sorted(self.accuracies)
            values = [100 * self.accuracies[k] for k in depths]
            n = len(self._faces()[1])
            # +-2 binomial standard errors: the accuracy on other faces of the same kind would move that much
            errors = [200 * np.sqrt(a / 100 * (1 - a / 100) / n) for a in values]
            ax.bar(depths, values, yerr=errors, capsize=3, width=0.6,
                   color=["#e6550d" if k == used else "#fdae6b" for k in depths],
                   label=f"this model rewired ({n} test faces, ±2 SE)")
            missing = [k for k in range(trained.depth + 1) if k not in self.accuracies]
            if missing:
                ax.text(0.02, 0.97, f"swap_depth {', '.join(map(str, missing))}: move the slider there "
                        "to score it", transform=ax.transAxes, fontsize=7, va="top", color="grey")
        else:
            ax.text(0.5, 0.6, "no test set given:\nno accuracies", ha="center", transform=ax.transAxes,
                    fontsize=8, color="grey")
        if self.shipped:
            for k, values in self.shipped["accuracy"].items():
                ax.scatter([k] * len(values), [100 * v for v in values], marker="D", s=22, color="#3182bd", zorder=3)
            blocks = f"{self.shipped['depth']} blocks" if self.shipped["depth"] else "its own depth"
            ax.scatter([], [], marker="D", s=22, color="#3182bd",
                       label=f"trained at that swap depth ({self.shipped['file']}: nano, {blocks},\n"
                             f"frozen backbones, {self.shipped['n_test']} test faces, a mark per seed)")
        ax.axhline(chance, color="grey", ls=":", lw=1, label="chance")
        xs = list(range(trained.depth + 1)) + (list(self.shipped["accuracy"]) if self.shipped else [])
        ax.set_xticks(sorted(set(xs)))
        ax.set_xlim(-0.6, max(xs) + 0.6)
        ax.set_ylim(0, 100)
        ax.set_xlabel("swap_depth", fontsize=8)
        ax.set_ylabel("test accuracy (%)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6.5, loc="upper right")
        ax.set_title("accuracy: rewired after training vs trained that way", fontsize=9)


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


def model_origin(model) -> str:
    """Which model is answering and what it learned from, in one line (the upload widget shows it):
    a model that has only seen SynthFER's drawn faces reads a real photo very differently from one
    trained on RAF-DB's."""
    meta = getattr(model, "meta", None) or {}
    config = getattr(model, "config", None)
    what = (f"{'image-only' if getattr(config, 'image_only', False) else 'POSTER'} "
            f"({config.depth} blocks, {config.input_size} px)") if config is not None else type(model).__name__
    if meta.get("source") == "authors' release":
        # the RAF-DB release has token mixers; the AffectNet ones have none (checkpoint.py)
        data = "RAF-DB" if getattr(config, "mix_tokens", True) else "AffectNet"
        return f"the authors' released {what}, trained on {data} (real photos)"
    if meta.get("source") == "shipped":
        accuracy = meta.get("metrics", {}).get("test_accuracy")
        score = f", {accuracy:.0%} on unseen drawn faces" if accuracy is not None else ""
        return f"poster-lite's shipped {what}, trained on SynthFER (drawn faces, never a photo{score})"
    return f"a {what} trained here (on SynthFER's drawn faces unless you trained it on photos)"


class UploadPredictor(Explorer):
    """Upload photos (or, in Colab, take a webcam snapshot); see faces, boxes and probabilities.
    Which model answers, and on what it was trained, is said above the controls and in the picture."""

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
        controls["answering"] = w.HTML(f"<i>answering: {html.escape(model_origin(model))}</i>")
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
        items = change["new"]
        if isinstance(items, dict):     # ipywidgets 7: {file name: {"metadata": ..., "content": bytes}}
            items = [dict(item, name=name) for name, item in items.items()]
        for item in items:
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
        figure = plot_predictions(self.images, self.results)
        figure.suptitle(f"answering: {model_origin(self.model)}", fontsize=9, color="#444")
        return figure


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
        # The matrix above the faces, four faces a row: about 800 px wide at the widget's
        # resolution, so that it shows at its natural size with legible labels.
        cols = max(1, min(4, shown))
        rows = max(1, -(-shown // cols))
        matrix_height, gallery_height = 0.5 * n + 1.9, 2.8 * rows + 0.5
        fig = Figure(figsize=(max(2.05 * cols + 0.3, 0.55 * n + 2.6), matrix_height + gallery_height),
                     layout="constrained")
        top, bottom = fig.subfigures(2, 1, height_ratios=[matrix_height, gallery_height])
        ax = top.subplots()
        draw_confusion(ax, row_normalise(self.results["confusion"]), self.classes,
                       "row-normalised (%); chosen cell boxed", colorbar=False)
        ax.add_patch(Rectangle((predicted, true), 1, 1, fill=False, edgecolor="#e6550d", linewidth=3))
        plot_confusion_cell(self.dataset, self.results, true, predicted, self.n, ncols=cols,
                            classes=self.classes, channel_order=self.channel_order, into=bottom)
        return fig


# Lower-case spellings, for notebooks that read better with a function call.
def swap_depth_explorer(model=None, image=None, preset: str = "poster-l", channel_order=None,
                        test_set=None, n_faces: int = 300, ablations=None) -> SwapDepthExplorer:
    return SwapDepthExplorer(model, image, preset, channel_order, test_set, n_faces, ablations)


def pyramid_explorer(preset: str = "poster-l", size_presets=("image-only", "poster-t", "poster-s", "poster-l"),
                     **overrides) -> PyramidExplorer:
    return PyramidExplorer(preset, size_presets, **overrides)


def face_designer(model=None, size: int = 112, channel_order=None) -> FaceDesigner:
    return FaceDesigner(model, size, channel_order)


def upload_and_predict(model=None, checkpoint=None, detect_faces: bool = True) -> UploadPredictor:
    return UploadPredictor(model, checkpoint, detect_faces)


def confusion_explorer(dataset, results, n: int = 12, channel_order: str = "rgb") -> ConfusionExplorer:
    return ConfusionExplorer(dataset, results, n, channel_order)


__all__ = ["Explorer", "png_size", "rewired", "shipped_swap_ablation", "SwapDepthExplorer", "PyramidExplorer", "FaceDesigner", "UploadPredictor",
           "ConfusionExplorer", "webcam_snapshot", "in_colab", "swap_depth_explorer", "pyramid_explorer",
           "face_designer", "upload_and_predict", "confusion_explorer"]
