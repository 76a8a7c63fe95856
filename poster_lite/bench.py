"""Faithful vs fast, side by side in one run: images/s, FLOP/s, agreement.

Used by `benchmarks/speed.py` and `poster-lite bench`. Every figure is a median over
repeats (after warm-up) with its spread (min..max), and faithful and fast runs are
interleaved so that a noisy neighbour slows both alike. Nothing here is asserted:
the numbers are reported (printed as a table and saved as JSON).
"""
from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from .checkpoint import atomic_write
from .complexity import complexity
from .config import make_config
from .device import explicit_attention_for_training, loader_options, pick_device, resolve_precision
from .fast import fast
from .models import build_model


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(dtype, device, n=2048, seconds=1.0) -> float:
    """Measured matrix-product throughput (FLOP/s) for `dtype`: the roofline we compare to."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b
    _sync(device)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    _sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - t0)


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else what platform says)."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def bf16_units() -> str:
    """"AMX", "AVX512-BF16" or "none": the CPU's bf16 matrix instructions."""
    try:
        from torch.cpu import _is_amx_tile_supported, _is_avx512_bf16_supported
        amx, avx = bool(_is_amx_tile_supported()), bool(_is_avx512_bf16_supported())
    except ImportError:
        try:
            flags = open("/proc/cpuinfo").read()
        except OSError:
            flags = ""
        amx, avx = "amx_bf16" in flags, "avx512_bf16" in flags
    return "AMX" if amx else "AVX512-BF16" if avx else "none"


def machine(peaks: bool = True, seconds: float = 2.0) -> dict:
    """What the figures were measured on: CPU model, bf16 units, threads, load, and (peaks=True)
    the measured fp32 and bf16 matrix-product peaks (FLOP/s) on the CPU."""
    info = {"cpu": cpu_model(), "bf16_units": bf16_units(), "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "platform": platform.platform(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "time_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}
    if peaks:
        cpu = torch.device("cpu")
        info["peaks"] = {"fp32": matmul_peak(torch.float32, cpu, seconds=seconds)}
        if info["bf16_units"] != "none":
            info["peaks"]["bf16"] = matmul_peak(torch.bfloat16, cpu, seconds=seconds)
    return info


def machine_line(info: dict) -> str:
    peaks = ", ".join(f"{k} {v / 1e12:.2f} TFLOP/s" for k, v in info.get("peaks", {}).items())
    load = info.get("load_average")
    return (f"machine: {info['cpu']} ({info['cpu_count']} cores), bf16 units: {info['bf16_units']}, "
            f"{info['threads']} threads, torch {info['torch']}"
            + (f", measured matmul peaks {peaks}" if peaks else "")
            + (f", load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}" if load else "") + f", {info['time_utc']} UTC")


def _timed(fn, device, iters):
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / iters


def _interleaved(fns: dict, device, warmup, repeats, iters) -> dict:
    """{name: [seconds per call, one per repeat]}, the candidates taking turns."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(_timed(fn, device, iters))
    return times


def _ratio_spread(faithful: list, fast: list) -> list:
    """[min, max] of the speed-up within each interleaved repeat (faithful time / fast time)."""
    ratios = [a / b for a, b in zip(faithful, fast)]
    return [min(ratios), max(ratios)]


def _summary(seconds: list, batch: int) -> dict:
    rates = sorted(batch / s for s in seconds)
    return {"images_per_s": statistics.median(rates), "min": rates[0], "max": rates[-1]}


def sam_step_fn(name: str, model, batch, device, precision: str, channels_last: bool, fast: bool = True,
                reuse_frozen: bool | None = None, compile: bool = False):
    """One training step of the recipe, as pl.train takes it (SAM around Adam at the
    preset's default lr, CE + 2 x smoothed CE). fast (pl.train's default): bf16 CPU steps
    through explicit attention, SAM's second pass reusing the frozen landmark stream
    (reuse_frozen overrides it; a compiled step computes it again); fast=False: neither."""
    from .losses import PosterLoss
    from .sam import SAM
    from .training.loop import training_step
    from .training.recipe import Recipe, default_lr, make_optimizer

    model.train().to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    recipe = Recipe(lr=default_lr(name))
    optimizer = make_optimizer(model, recipe)
    sam = SAM(optimizer, recipe.rho)
    criterion = PosterLoss(recipe.smoothing, recipe.smoothing_weight)
    x, y = batch
    x, y = x.to(device), y.to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    reuse = (fast and not compile) if reuse_frozen is None else reuse_frozen
    net = torch.compile(model) if compile else model

    def step():
        with explicit_attention_for_training(model, device, precision, enabled=fast):
            training_step(net, x, y, criterion, optimizer, sam, precision=precision, reuse_frozen=reuse)
    return step


def _test_faces(n: int, quick: bool, transform=None, source_size: int = 112):
    """SynthFER's test split: the default set when it is on disk; otherwise a full run
    generates it (about 3 minutes, once), while a quick run draws a small set of its own
    (under a second) so that `--quick` stays quick on a fresh clone. source_size=224: a
    small set of synthfer-224's kind (224 px JPEGs, what a training at 224 decodes)."""
    from .data import DEFAULT_SET, data_dir, load
    from .data.synthfer import is_current

    if source_size == 224:
        return load("synthfer-224", split="test", transform=transform, n_train=8, n_val=8, n_test=n, progress=False)
    small = quick and not is_current(data_dir() / "synthfer", **DEFAULT_SET)
    extra = dict(n_train=8, n_val=8, n_test=n, progress=False) if small else {}
    return load("synthfer", split="test", transform=transform, **extra)


def sample_faces(n: int, size: int, quick: bool = False):
    """n SynthFER test faces at `size` as (images, labels)."""
    from .data.transforms import eval_transform

    ds = _test_faces(n, quick, eval_transform(size))
    idx = range(min(n, len(ds)))
    return torch.stack([ds[i][0] for i in idx]), torch.tensor([ds[i][1] for i in idx])


def pipeline_speed(size: int, n: int = 256, quick: bool = False) -> dict:
    """Images/s of the input pipeline alone, in this process: decode only, then decode +
    eval transform, then decode + the training augmentation (one core's worth). The faces
    are SynthFER JPEGs of `size` pixels where there is such a set (112 and 224).

    Reported beside the model figures so that one can see whether a training or an
    evaluation loop waits for its data (`input_verdict`; if the pipeline is slower than the
    model, add DataLoader workers: `num_workers=` in `pl.train`).
    """
    from .data.transforms import eval_transform, train_transform

    ds = _test_faces(n, quick, source_size=224 if size == 224 else 112)
    idx = list(range(min(n, len(ds))))
    out = {"images": len(idx), "source_size": list(ds[0][0].size), "size": size}
    # One thread, as in a DataLoader worker (PyTorch sets each worker to one): with more, the
    # transforms' small tensor operations wait for each other (20x slower on a busy 2-core machine).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, transform in (("decode", None), ("decode + eval transform", eval_transform(size)),
                                ("decode + train augmentation", train_transform(size))):
            start = time.perf_counter()
            for i in idx:
                image = ds[i][0]
                if transform is not None:
                    transform(image)
                else:
                    image.load()
            out[name] = len(idx) / (time.perf_counter() - start)
        out["in memory + train augmentation (batches)"] = _in_memory_speed(ds, idx, size)
    finally:
        torch.set_num_threads(threads)
    return out


def _in_memory_speed(ds, idx, size: int, batch: int = 64) -> float:
    """Images/s of pl.train's default feed: the faces decoded once (not timed: once per run),
    then the training augmentation a batch at a time (data/in_memory.py)."""
    from torch.utils.data import Subset as TorchSubset

    from .data.in_memory import InMemoryFaces

    faces = InMemoryFaces.decode(TorchSubset(ds, idx), size)
    order = list(range(len(faces)))
    start = time.perf_counter()
    for b in range(0, len(order), batch):
        faces.batch(order[b:b + batch])
    return len(order) / (time.perf_counter() - start)


def input_verdict(decode_images_per_s: float, workers: int, step_images_per_s: float) -> dict:
    """Does a training loop wait for its data? "input-bound" or "compute-bound", with the rates.

    decode_images_per_s: one process decoding and augmenting (pipeline_speed's
    "decode + train augmentation"); workers: the DataLoader's processes (0: the training
    process decodes itself, between steps); step_images_per_s: the training step's rate.
    Workers decode in parallel with the step, so the loop runs at the slower of the two:
    the feed (workers x one worker's rate) or the step. Without workers the two take turns,
    so the loop runs at 1 / (1/decode + 1/step), and decoding is the larger share when it
    is slower than the step.
    """
    feed = decode_images_per_s * max(1, workers)
    if workers > 0:
        loop = min(feed, step_images_per_s)
    else:
        loop = 1 / (1 / decode_images_per_s + 1 / step_images_per_s)
    verdict = "input-bound" if feed < step_images_per_s else "compute-bound"
    return {"verdict": verdict, "feed_images_per_s": feed, "step_images_per_s": step_images_per_s,
            "workers": workers, "decode_images_per_s": decode_images_per_s, "loop_images_per_s": loop,
            "workers_needed": math.ceil(step_images_per_s / decode_images_per_s)}


def verdict_line(model: str, device: str, v: dict) -> str:
    feed = (f"{v['workers']} loader process(es) x {v['decode_images_per_s']:.0f} = {v['feed_images_per_s']:.0f} img/s"
            if v["workers"] else f"decoded in the training process at {v['decode_images_per_s']:.0f} img/s")
    return (f"  {model} on {device}: training step {v['step_images_per_s']:.1f} img/s, input {feed} -> "
            f"{v['verdict']} (the loop: about {v['loop_images_per_s']:.1f} img/s; "
            f"{v['workers_needed']} loader process(es) would keep up)")


def agreement(model, fast_model, images, batch=64) -> dict:
    """Top-1 agreement and largest logit difference between the two paths."""
    model.eval()
    a, b = [], []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = images[i:i + batch]
            a.append(model(x.to(next(model.parameters()).device)).float().cpu())
            b.append(fast_model(x).float().cpu())
    a, b = torch.cat(a), torch.cat(b)
    return {"top1_agreement": (a.argmax(1) == b.argmax(1)).float().mean().item(),
            "max_logit_diff": (a - b).abs().max().item(), "n": len(a),
            "faithful_pred": a.argmax(1), "fast_pred": b.argmax(1)}


def run(models=("poster-nano", "poster-l"), batches=None, devices=None, quick=False, repeats=5,
        warmup=2, checkpoint=None, compile=False, out=None, verbose=True, profile=True,
        end_to_end_root="runs/bench") -> dict:
    batches = batches or {"poster-nano": [16, 64], "poster-l": [4, 16]}
    if quick:
        batches = {m: [b[0] for b in [batches.get(m, [4])]] for m in models}
        repeats, warmup = 2, 1
    devices = devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    result = {"machine": machine(peaks=False), "rows": [], "peaks": {}, "agreement": []}
    log = print if verbose else (lambda *a, **k: None)
    for dev_name in devices:
        device = pick_device(dev_name)
        fast_precision = resolve_precision("auto", device)
        if device.type == "cuda":
            result["machine"]["gpu"] = torch.cuda.get_device_name(device)
        peaks = {"fp32": matmul_peak(torch.float32, device, seconds=0.5 if quick else 2.0)}
        if fast_precision != "fp32":
            dt = torch.bfloat16 if fast_precision == "bf16" else torch.float16
            peaks[fast_precision] = matmul_peak(dt, device, seconds=0.5 if quick else 2.0)
        result["peaks"][device.type] = peaks
        if device.type == "cpu":
            result["machine"]["peaks"] = peaks
            log(machine_line(result["machine"]))
        log(f"[{device.type}] matmul peak: " + ", ".join(f"{k} {v / 1e12:.2f} TFLOP/s" for k, v in peaks.items()))
        for name in models:
            torch.manual_seed(0)
            model = build_model(name)
            if checkpoint and name == "poster-nano":
                from .checkpoint import load_checkpoint
                model = load_checkpoint(checkpoint)
            model.eval().to(device)
            flops = complexity(model)["flops"]
            t0 = time.perf_counter()
            fast_model = fast(model, device=device, compile=compile)
            setting = dict(name=name, device=device, fast_precision=fast_precision, flops=flops, peaks=peaks)
            for bs in batches.get(name, [4]):
                result["rows"].append(_inference_row(model, fast_model, bs, compile, time.perf_counter() - t0,
                                                     warmup, repeats, **setting))
                log(_line(result["rows"][-1]))
            # The larger batch for training (training batches are large; the quick mode takes the small one).
            row = _training_row(batches.get(name, [4])[0 if quick else -1], quick, repeats, compile=compile,
                                **setting)
            result["rows"].append(row)
            log(_line(row))
            for line in candidate_lines(row):
                log(line)
            entry = _agreement_entry(model, fast_model, name, device, quick, bool(checkpoint and name == "poster-nano"))
            result["agreement"].append(entry)
            log(f"  agreement {name} on {entry['n']} {entry['inputs']} inputs: top-1 "
                f"{100 * entry['top1_agreement']:.1f}%, max |logit diff| {entry['max_logit_diff']:.4f}"
                + (f", accuracy {100 * entry['faithful_accuracy']:.2f}% vs {100 * entry['fast_accuracy']:.2f}%"
                   if "fast_accuracy" in entry else ""))
            del model, fast_model
    result["pipelines"] = {}
    for size in sorted({make_config(name).input_size for name in models} | {112}):
        pipe = result["pipelines"][size] = pipeline_speed(size, n=64 if quick else 512, quick=quick)
        log(f"[data] SynthFER {pipe['source_size'][0]} px JPEGs to {pipe['size']} px, one core: "
            + ", ".join(f"{k} {v:.0f} img/s" for k, v in pipe.items() if isinstance(v, float)))
    result["pipeline"] = result["pipelines"][112]
    result["verdicts"] = []
    log("[input] is the training fed? (pl.train's DataLoader workers on each device: device.loader_options)")
    for row in (r for r in result["rows"] if r["mode"].startswith("train")):
        device = torch.device(row["device"])
        # pl.train's step on CUDA runs channels-last; measured as a candidate (not in --quick)
        step = row["candidates"].get("fast + channels-last", row["fast"]) if device.type == "cuda" else row["fast"]
        pipe = result["pipelines"][make_config(row["model"]).input_size]
        # pl.train's default (fast) decodes a set that fits in memory once and augments batches of it.
        decode = pipe.get("in memory + train augmentation (batches)", pipe["decode + train augmentation"])
        v = dict(input_verdict(decode, loader_options(device)["num_workers"], step["images_per_s"]),
                 model=row["model"], device=row["device"], batch=row["batch"])
        result["verdicts"].append(v)
        log(verdict_line(row["model"], row["device"], v))
    if profile and "poster-nano" in models and "cpu" in devices:
        result["profiles"] = _profiles(quick, result["peaks"]["cpu"], log)
    result["targets"] = targets(result, recorded_end_to_end(Path(end_to_end_root)))
    log("[targets] issue 18's, each against the faithful float32 eager path")
    for line in target_lines(result["targets"]):
        log(line)
    result["machine"]["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    if out:
        atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(result, indent=2, default=str)))
        log(f"saved {out}")
    return result


def _inference_row(model, fast_model, bs, compile, build_s, warmup, repeats, name, device, fast_precision,
                   flops, peaks) -> dict:
    """Faithful and fast inference on one batch size, interleaved."""
    size = model.config.input_size
    x = torch.randn(bs, 3, size, size, device=device)
    compile_s = None
    if compile:
        t0 = time.perf_counter()
        fast_model(x)
        compile_s = time.perf_counter() - t0

    def faithful():
        with torch.no_grad():
            model(x)
    times = _interleaved({"faithful": faithful, "fast": lambda: fast_model(x)},
                         device, warmup, repeats, 1 if name == "poster-l" else 2)
    row = {"device": device.type, "model": name, "mode": "inference", "batch": bs,
           "fast_precision": fast_precision, "gflops_per_image": flops / 1e9,
           "faithful": _summary(times["faithful"], bs), "fast": _summary(times["fast"], bs),
           "fast_build_s": build_s, "compile_s": compile_s,
           "speedup_spread": _ratio_spread(times["faithful"], times["fast"])}
    _finish_row(row, flops, peaks, fast_precision)
    return row


# Training-step candidates beside the two paths: (label, fast, reuse of the frozen stream,
# channels-last, torch.compile). Each is measured interleaved with the others; its gain is
# reported against "fast" (pl.train's default step).
TRAINING_CANDIDATES = (("fast without landmark reuse", True, False, False, False),
                       ("fast + channels-last", True, True, True, False),
                       ("fast + torch.compile", True, False, False, True))


def _training_row(bs, quick, repeats, name, device, fast_precision, flops, peaks, compile=False) -> dict:
    """One training step with SAM: both passes fwd+bwd (~3x forward each). "fast" is what
    pl.train does by default (Recipe.fast); "faithful" is Recipe(fast=False), float32 eager.
    The candidates (TRAINING_CANDIDATES; not in --quick; torch.compile only with --compile)
    show what each technique adds or would add."""
    size, classes = make_config(name).input_size, make_config(name).num_classes
    data = (torch.randn(bs, 3, size, size), torch.randint(0, classes, (bs,)))
    setups = [("faithful", False, False, False, False), ("fast", True, None, False, False)]
    if not quick:
        setups += [c for c in TRAINING_CANDIDATES if compile or not c[4]]
    steps, compile_s = {}, None
    for label, fast_path, reuse, channels_last, compiled in setups:
        torch.manual_seed(0)
        steps[label] = sam_step_fn(name, build_model(name), data, device, fast_precision if fast_path else "fp32",
                                   channels_last, fast=fast_path, reuse_frozen=reuse, compile=compiled)
        if compiled:
            t0 = time.perf_counter()
            steps[label]()                            # the first call compiles (forward and backward)
            compile_s = time.perf_counter() - t0
    times = _interleaved(steps, device, 1, max(2, repeats - 2), 1)
    row = {"device": device.type, "model": name, "mode": "train step (SAM)", "batch": bs,
           "fast_precision": fast_precision, "gflops_per_image": 6 * flops / 1e9,
           "faithful": _summary(times["faithful"], bs), "fast": _summary(times["fast"], bs),
           "candidates": {}, "compile_s": compile_s,
           "speedup_spread": _ratio_spread(times["faithful"], times["fast"])}
    fast_rate = row["fast"]["images_per_s"]
    for label in times:
        if label not in ("faithful", "fast"):
            c = _summary(times[label], bs)
            row["candidates"][label] = dict(c, gain_vs_fast=c["images_per_s"] / fast_rate,
                                            ratio_vs_faithful=c["images_per_s"] / row["faithful"]["images_per_s"])
    _finish_row(row, 6 * flops, peaks, fast_precision)
    return row


def candidate_lines(row) -> list:
    out = []
    for label, c in row.get("candidates", {}).items():
        extra = f", compiling took {row['compile_s']:.0f} s" if "compile" in label and row.get("compile_s") else ""
        out.append(f"    {label:28s} {c['images_per_s']:7.1f} img/s [{c['min']:.1f}..{c['max']:.1f}]  "
                   f"x{c['gain_vs_fast']:.2f} vs fast, x{c['ratio_vs_faithful']:.2f} vs faithful{extra}")
    return out


def _profiles(quick: bool, peaks: dict, log) -> list:
    """The nano training step's profile (training/profile.py): the fast path, and the faithful one
    unless quick. benchmarks/train_profile.py prints the same tables with more steps."""
    from .training.profile import profile_lines, profile_step

    log("[profile] where a poster-nano SAM training step spends its time (pl.train's step, real SynthFER batches)")
    found = []
    for fast_path in ((True,) if quick else (True, False)):
        r = profile_step("poster-nano", fast=fast_path, batch=16 if quick else 64, steps=2 if quick else 3,
                         warmup=1, op_steps=0 if quick else 1, peaks=peaks, n_train=256 if quick else None)
        r.pop("machine", None)
        found.append(r)
        for line in profile_lines(r):
            log(line)
    return found


def _agreement_entry(model, fast_model, name, device, quick, trained) -> dict:
    """Agreement between the paths on SynthFER test faces (and their accuracy for a trained model)."""
    faces = sample_faces(64 if quick else 512, model.config.input_size, quick)
    agree = agreement(model, fast_model, faces[0])
    entry = {"device": device.type, "model": name, "inputs": "synthfer",
             "top1_agreement": agree["top1_agreement"], "max_logit_diff": agree["max_logit_diff"],
             "n": agree["n"], "trained": trained}
    if trained:
        y = faces[1][: agree["n"]]
        entry["faithful_accuracy"] = (agree["faithful_pred"] == y).float().mean().item()
        entry["fast_accuracy"] = (agree["fast_pred"] == y).float().mean().item()
    return entry


def _finish_row(row, flops_per_image, peaks, fast_precision):
    f, s = row["faithful"]["images_per_s"], row["fast"]["images_per_s"]
    row["speedup"] = s / f
    row["faithful_peak_fraction"] = f * flops_per_image / peaks["fp32"]
    row["fast_peak_fraction"] = s * flops_per_image / peaks.get(fast_precision, peaks["fp32"])


def _line(row) -> str:
    f, s = row["faithful"], row["fast"]
    return (f"  {row['model']:11s} {row['mode']:17s} b={row['batch']:<3d} faithful {f['images_per_s']:7.1f} img/s "
            f"[{f['min']:.1f}..{f['max']:.1f}] ({100 * row['faithful_peak_fraction']:4.1f}% of fp32 peak) | "
            f"fast/{row['fast_precision']} {s['images_per_s']:7.1f} img/s [{s['min']:.1f}..{s['max']:.1f}] "
            f"({100 * row['fast_peak_fraction']:4.1f}% of its peak) | x{row['speedup']:.2f}"
            + (" [{:.2f}..{:.2f}]".format(*row["speedup_spread"]) if "speedup_spread" in row else ""))


# Issue 18's targets: ratios over the faithful float32 eager path, measured in one run.
# Inference's target depends on the CPU's bf16 units: AMX tiles make a bf16 product about 7x
# a float32 one, AVX512-BF16 about 2.3x; with neither, bf16 buys nothing and no target is set.
TARGETS = {"train step": 3.0, "end to end": 3.0, "inference": {"AMX": 5.0, "AVX512-BF16": 2.5},
           "agreement": 0.99, "end to end accuracy points": 1.0}


def recorded_end_to_end(root: Path) -> dict | None:
    """The full default trainings benchmarks/train_end_to_end.py recorded (faithful and fast),
    when both are there: they take hours on a CPU, so `make bench` reports them, not reruns them."""
    runs = {}
    for path in ("faithful", "fast"):
        f = Path(root) / f"train_e2e_{path}.json"
        if not f.exists():
            return None
        try:
            runs[path] = json.loads(f.read_text())
        except ValueError as err:
            raise ValueError(f"{f} is not a benchmark record (JSON: {err}); rerun "
                             f"benchmarks/train_end_to_end.py --path {path}") from None
    return runs


def _ceiling(row, peaks) -> float | None:
    """The highest ratio a bf16 path could reach against this faithful run: the bf16 path at 100%
    of the bf16 peak over the faithful path's measured rate."""
    if "bf16" not in peaks or not row.get("faithful_peak_fraction"):
        return None
    return peaks["bf16"] / peaks["fp32"] / row["faithful_peak_fraction"]


def targets(result: dict, end_to_end: dict | None = None) -> list:
    """Each target of issue 18 with what this run (or the recorded end-to-end trainings) measured."""
    units = result["machine"].get("bf16_units", "none")
    peaks = result["peaks"].get("cpu", {})
    found = []

    def add(name, measured, target, spread=None, ceiling=None, note=""):
        reached = None if measured is None or target is None else measured >= target
        found.append({"target": name, "measured": measured, "goal": target, "spread": spread,
                      "reached": reached, "ceiling": ceiling, "note": note})

    cpu_rows = [r for r in result["rows"] if r["device"] == "cpu"]
    for r in (r for r in cpu_rows if r["model"] == "poster-nano" and r["mode"].startswith("train")):
        add(f"poster-nano SAM training step, batch {r['batch']}", r["speedup"], TARGETS["train step"],
            r.get("speedup_spread"), _ceiling(r, peaks))
    inference = [r for r in cpu_rows if r["model"] == "poster-l" and r["mode"] == "inference"]
    if inference:
        r = max(inference, key=lambda r: r["batch"])
        goal = TARGETS["inference"].get(units)
        add(f"poster-l inference, batch {r['batch']} ({units} bf16 units)", r["speedup"], goal,
            r.get("speedup_spread"), _ceiling(r, peaks),
            "" if goal else "no bf16 matrix units: bf16 cannot beat float32 here, so no target")
    for a in (a for a in result["agreement"] if a["device"] == "cpu"):
        add(f"top-1 agreement, {a['model']} ({'trained' if a['trained'] else 'untrained: near-tie logits'}), "
            f"{a['n']} SynthFER faces", a["top1_agreement"], TARGETS["agreement"])
    if end_to_end is None:
        add("full default poster-nano training, end to end", None, TARGETS["end to end"],
            note="not recorded here: run benchmarks/train_end_to_end.py --path faithful, then --path fast "
                 "(one after the other, nothing else running)")
    else:
        slow, quick = end_to_end["faithful"], end_to_end["fast"]
        points = 100 * (quick["test"]["accuracy"] - slow["test"]["accuracy"])
        add("full default poster-nano training, end to end", slow["wall_s"] / quick["wall_s"], TARGETS["end to end"],
            note=f"recorded: faithful {slow['wall_s'] / 60:.1f} min ({slow['epochs_trained']} epochs, "
                 f"test {100 * slow['test']['accuracy']:.2f}%), fast {quick['wall_s'] / 60:.1f} min "
                 f"({quick['epochs_trained']} epochs, test {100 * quick['test']['accuracy']:.2f}%): accuracy "
                 f"{points:+.2f} points (target within {TARGETS['end to end accuracy points']:.0f}); "
                 f"on {slow['machine_before']['cpu']}, {slow['machine_before']['time_utc']} UTC")
    return found


def target_lines(found: list) -> list:
    out = []
    for t in found:
        is_share = t["goal"] is not None and t["goal"] < 1
        fmt = (lambda v: f"{100 * v:.1f}%") if is_share else (lambda v: f"x{v:.2f}")
        measured = "not measured" if t["measured"] is None else fmt(t["measured"])
        if t["spread"]:
            measured += " [{:.2f}..{:.2f}]".format(*t["spread"])
        goal = "" if t["goal"] is None else f", target {'>=' if is_share else ''}{fmt(t['goal'])}"
        verdict = {True: ": reached", False: ": not reached", None: ""}[t["reached"]]
        extra = [f"the measured peaks allow at most x{t['ceiling']:.1f}"] if t["ceiling"] and t["reached"] is False else []
        extra += [t["note"]] if t["note"] else []
        out.append(f"  {t['target']}: {measured}{goal}{verdict}" + "".join(f"; {e}" for e in extra))
    return out
