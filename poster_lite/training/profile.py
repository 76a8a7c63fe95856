"""Where one SAM training step spends its time (benchmarks/train_profile.py, `make bench`).

    result = profile_step("poster-nano", fast=True, batch=64)
    print("\\n".join(profile_lines(result)))

The step is pl.train's own: the model, optimiser, SAM, loss, precision and loader are built
by the functions `pl.train` builds them with (training/__init__.py), the batches come from the
real SynthFER training set through the training augmentation, and the step is
`loop.training_step`, which marks where each phase ends. Reported per phase (data loading,
forward, backward, SAM's ascent, its forward and backward at w + e, the return, the
optimiser's step): milliseconds per step, share, FLOPs and the FLOP rate as a fraction of
the machine's measured matrix-product peak for the step's precision; per part of the
model (forward only: each backbone, the fusion transformer, the head); and per kind of
operation (torch.profiler's self time of convolutions, matrix products, attention,
normalisation, activations, copies and casts, the optimiser's arithmetic, the rest).
"""
from __future__ import annotations

import statistics
import time
from collections import defaultdict

import torch
from torch.utils.flop_counter import FlopCounterMode

PHASES = ("data", "forward", "backward", "sam.ascend", "sam.forward", "sam.backward", "sam.restore", "optimizer")
PHASE_NAMES = {"data": "data loading (next batch)", "forward": "forward at w", "backward": "backward at w",
               "sam.ascend": "SAM: climb to w + e", "sam.forward": "SAM: forward at w + e",
               "sam.backward": "SAM: backward at w + e", "sam.restore": "SAM: back to w",
               "optimizer": "optimiser step"}
# The model's parts timed in the forward passes (top-level modules; the IR-50's own stages).
PARTS = {"IR-50 stem": ("image_backbone.stem",), "IR-50 stages": ("image_backbone.stages",),
         "landmark backbone": ("landmark_backbone",), "token projection": ("image_proj",),
         "fusion transformer": ("fusion",), "SE gate + head": ("se", "head")}
# torch.profiler operator names -> kind (first match wins; matched on the lower-cased name).
OP_KINDS = (("convolution", ("conv",)),
            ("attention (softmax, SDPA)", ("softmax", "scaled_dot_product", "attention")),
            ("matrix products", ("addmm", "bmm", "mm", "matmul", "linear", "baddbmm")),
            ("normalisation", ("batch_norm", "layer_norm", "native_norm", "_norm")),
            ("activations", ("prelu", "relu", "gelu", "sigmoid", "silu", "tanh", "_prelu_kernel")),
            ("copies and casts", ("copy_", "_to_copy", "clone", "contiguous", "to", "cat", "stack")),
            ("optimiser arithmetic", ("_foreach", "addcdiv", "addcmul", "lerp", "sqrt", "_fused_adam")),
            ("elementwise (add, mul, ...)", ("add", "mul", "sub", "div", "neg", "where", "clamp", "fill_",
                                            "zero_")))


def _kind(name: str) -> str:
    low = name.lower()
    for kind, keys in OP_KINDS:
        if any(k in low for k in keys):
            return kind
    return "other"


def build_step(name: str = "poster-nano", fast: bool = True, batch: int = 64, n_train: int | None = None,
               precision: str = "auto", quick: bool = False):
    """pl.train's training parts for `name` on SynthFER: (model, loader, step(images, labels, mark), info)."""
    from ..data import load
    from ..data.subset import Subset
    from ..device import explicit_attention_for_training, resolve_precision
    from ..models import build_model
    from ..pretrain import load_pretrained_backbones
    from . import _make_loader, _prepare_data, _training_parts
    from .loop import training_step
    from .recipe import default_lr, make_recipe

    device = torch.device("cpu")
    recipe = make_recipe({"lr": default_lr(name), "fast": fast})
    precision = resolve_precision(precision if fast or precision != "auto" else "fp32", device)
    train_set = load("synthfer", split="train", progress=False)
    if n_train is not None and n_train < len(train_set):
        train_set = Subset(train_set, n_train)
    torch.manual_seed(0)
    model = build_model(name, num_classes=len(train_set.classes))
    loaded = load_pretrained_backbones(model)        # as trained_model starts (random where none are cached)
    started = time.perf_counter()
    train_data, _, _, _ = _prepare_data(model, train_set, None, None, "rgb", in_memory=fast)
    prepare_s = time.perf_counter() - started
    loader = _make_loader(train_data, batch, 1, 0, recipe, device)
    net, optimizer, _, sam, scaler, criterion = _training_parts(model, recipe, 1, device, precision, 1, False,
                                                                False, None)
    model.train()

    def step(images, labels, mark=None):
        with explicit_attention_for_training(model, device, precision, enabled=fast):
            return training_step(net, images, labels, criterion, optimizer, sam, scaler, precision,
                                 reuse_frozen=fast, mark=mark)
    info = {"model": name, "fast": fast, "precision": precision, "batch": batch, "train_images": len(train_data),
            "loader": type(train_data).__name__, "data_prepare_s": prepare_s,
            "pretrained_backbones": [str(p) for p in loaded]}
    return model, loader, step, info


def count_flops(model, images, labels, criterion=None) -> dict:
    """FLOPs of one forward and one backward of `model` on a batch, in total and per part."""
    from ..losses import PosterLoss

    criterion = criterion or PosterLoss()
    counted = {}
    for phase in ("forward", "backward"):
        with FlopCounterMode(display=False) as counter:
            logits = model(images)
            if phase == "backward":
                loss = criterion(logits.float(), labels)
        if phase == "backward":
            with FlopCounterMode(display=False) as counter:
                loss.backward()
            model.zero_grad(set_to_none=True)
        by_module = counter.get_flop_counts()
        parts = {part: sum(sum(by_module.get(f"{type(model).__name__}.{m}", {}).values())
                           for m, _ in _called_modules(model, modules))
                 for part, modules in PARTS.items()}
        counted[phase] = {"total": counter.get_total_flops(), "parts": parts}
    return counted


def _called_modules(model, names):
    """(name, module) of each named module that its parent calls (a ModuleList is not
    called, only iterated: its members stand for it)."""
    modules = dict(model.named_modules())
    for name in names:
        module = modules.get(name)
        if isinstance(module, torch.nn.ModuleList):
            yield from ((f"{name}.{k}", m) for k, m in module.named_children())
        elif module is not None:
            yield name, module


class _PartTimer:
    """Forward hooks that add up the wall time of each part of the model, per forward pass."""

    def __init__(self, model):
        self.seconds, self.handles, self.started = defaultdict(float), [], {}
        self.pass_name = "forward"
        for part, names in PARTS.items():
            for name, module in _called_modules(model, names):
                self.handles.append(module.register_forward_pre_hook(self._start(part, name)))
                self.handles.append(module.register_forward_hook(self._stop(part, name)))

    def _start(self, part, name):
        def hook(module, args):
            self.started[name] = time.perf_counter()
        return hook

    def _stop(self, part, name):
        def hook(module, args, output):
            if torch.is_grad_enabled() or part == "landmark backbone":
                self.seconds[(self.pass_name, part)] += time.perf_counter() - self.started.pop(name)
        return hook

    def close(self):
        for h in self.handles:
            h.remove()


class _PhaseMarker:
    """training_step's `mark`: the seconds since the previous mark, per phase."""

    def __init__(self, timer: _PartTimer):
        self.seconds, self.last, self.timer = {}, time.perf_counter(), timer
        timer.pass_name = "forward"

    def __call__(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase], self.last = now - self.last, now
        if phase == "sam.ascend":                # the next forward is SAM's, at w + e
            self.timer.pass_name = "sam.forward"


def profile_step(name: str = "poster-nano", fast: bool = True, batch: int = 64, steps: int = 5, warmup: int = 2,
                 op_steps: int = 2, peaks: dict | None = None, quick: bool = False, n_train: int | None = None) -> dict:
    """Time `steps` real training steps (after `warmup`), phase by phase and part by part, then
    `op_steps` more under torch.profiler for the kinds of operations. Returns a dict (JSON-ready)."""
    from ..bench import machine

    machine_info = machine(peaks=peaks is None, seconds=0.5 if quick else 2.0)
    peaks = peaks or machine_info["peaks"]
    model, loader, step, info = build_step(name, fast, batch, n_train=n_train)
    peak = peaks.get(info["precision"], peaks["fp32"])
    batches = iter(loader)

    def next_batch():
        nonlocal batches
        try:
            return next(batches)
        except StopIteration:
            batches = iter(loader)
            return next(batches)

    timer = _PartTimer(model)
    phase_s = defaultdict(list)
    for i in range(warmup + steps):
        marker = _PhaseMarker(timer)
        images, labels = next_batch()
        marker("data")
        step(images, labels, marker)
        if i >= warmup:
            for phase, s in marker.seconds.items():
                phase_s[phase].append(s)
    part_s = {k: v / steps for k, v in timer.seconds.items()} if steps else {}
    timer.close()
    # Only the timed steps count: the warm-up steps' share of the hooks' sum is taken out.
    part_s = {k: v * steps / (warmup + steps) for k, v in part_s.items()}

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=info["precision"] == "bf16"):
        flops = count_flops(model, images, labels)
    landmark_flops = flops["forward"]["parts"]["landmark backbone"]
    phase_flops = {"forward": flops["forward"]["total"], "backward": flops["backward"]["total"],
                   "sam.forward": flops["forward"]["total"] - (landmark_flops if fast else 0),
                   "sam.backward": flops["backward"]["total"]}
    phases = []
    total = sum(statistics.median(v) for v in phase_s.values())
    for phase in PHASES:
        if phase not in phase_s:
            continue
        s = statistics.median(phase_s[phase])
        f = phase_flops.get(phase)
        phases.append({"phase": phase, "what": PHASE_NAMES[phase], "ms": 1e3 * s, "share": s / total,
                       "gflop": f / 1e9 if f else None,
                       "peak_fraction": f / s / peak if f else None})
    parts = []
    for (pass_name, part), s in sorted(part_s.items(), key=lambda kv: (kv[0][0] != "forward", -kv[1])):
        f = flops["forward"]["parts"][part] if not (pass_name == "sam.forward" and part == "landmark backbone"
                                                     and fast) else 0
        parts.append({"pass": pass_name, "part": part, "ms": 1e3 * s, "gflop": f / 1e9,
                      "peak_fraction": f / s / peak if f and s > 0 else None})

    ops = _op_kinds(step, next_batch, op_steps) if op_steps else []
    return {"machine": machine_info, "peak_used": peak, **info, "steps": steps, "warmup": warmup,
            "step_ms": 1e3 * total, "images_per_s": batch / total, "phases": phases, "parts": parts,
            "op_kinds": ops, "flops": flops}


def _op_kinds(step, next_batch, op_steps: int) -> list:
    """Self CPU time per kind of operation over `op_steps` steps under torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(op_steps):
            images, labels = next_batch()
            step(images, labels)
    kinds = defaultdict(float)
    top = defaultdict(float)
    for event in prof.key_averages():
        if event.key.startswith(("ProfilerStep", "autograd::engine", "## ")):
            continue
        kinds[_kind(event.key)] += event.self_cpu_time_total
        top[event.key] += event.self_cpu_time_total
    total = sum(kinds.values()) or 1.0
    rows = [{"kind": k, "ms_per_step": v / 1e3 / op_steps, "share": v / total}
            for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])]
    rows.append({"kind": "top operators", "ops": [{"op": k, "ms_per_step": v / 1e3 / op_steps, "share": v / total}
                                                   for k, v in sorted(top.items(), key=lambda kv: -kv[1])[:12]]})
    return rows


def profile_lines(result: dict) -> list:
    """The profile as printable lines (tables)."""
    r = result
    head = (f"{r['model']} SAM training step, {'fast' if r['fast'] else 'faithful'} path ({r['precision']}, "
            f"loader {r['loader']}), batch {r['batch']}: {r['step_ms']:.0f} ms per step = "
            f"{r['images_per_s']:.1f} img/s (median of {r['steps']} steps); FLOP rates against the measured "
            f"{r['precision']} peak {r['peak_used'] / 1e9:.0f} GFLOP/s")
    lines = [head, f"  {'phase':34s} {'ms':>8s} {'share':>6s} {'GFLOP':>7s} {'% peak':>7s}"]
    for p in r["phases"]:
        lines.append(f"  {p['what']:34s} {p['ms']:8.1f} {100 * p['share']:5.1f}% "
                     + (f"{p['gflop']:7.2f} {100 * p['peak_fraction']:6.1f}%" if p["gflop"] else f"{'-':>7s} {'-':>7s}"))
    lines.append(f"  {'part of the model (forward)':34s} {'ms':>8s} {'':6s} {'GFLOP':>7s} {'% peak':>7s}")
    for p in r["parts"]:
        label = f"{p['part']} ({'at w + e' if p['pass'] == 'sam.forward' else 'at w'})"
        lines.append(f"  {label:34s} {p['ms']:8.1f} {'':6s} {p['gflop']:7.2f} "
                     + (f"{100 * p['peak_fraction']:6.1f}%" if p["peak_fraction"] else f"{'-':>7s}"))
    kinds = [k for k in r["op_kinds"] if "ms_per_step" in k]
    if kinds:
        lines.append(f"  {'kind of operation (torch.profiler)':34s} {'ms':>8s} {'share':>6s}")
        for k in kinds:
            lines.append(f"  {k['kind']:34s} {k['ms_per_step']:8.1f} {100 * k['share']:5.1f}%")
    return lines
