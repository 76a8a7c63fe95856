"""Faithful vs fast, side by side in one run: images/s, FLOP/s, agreement.

Used by `benchmarks/speed.py` and `poster-lite bench`. Every figure is a median over
repeats (after warm-up) with its spread (min..max), and faithful and fast runs are
interleaved so that a noisy neighbour slows both alike. Nothing here is asserted:
the numbers are reported (printed as a table and saved as JSON).
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from .complexity import complexity
from .fast import autocast, explicit_attention_for_training, fast, pick_device, resolve_precision
from .models.poster import build_model


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


def _summary(seconds: list, batch: int) -> dict:
    rates = sorted(batch / s for s in seconds)
    return {"images_per_s": statistics.median(rates), "min": rates[0], "max": rates[-1]}


def sam_step_fn(model, batch, device, precision: str, channels_last: bool):
    """One training step of the recipe (SAM around Adam, CE + 2 x smoothed CE)."""
    from .losses import PosterLoss
    from .sam import SAM

    model.train().to(device)
    explicit_attention_for_training(model, device, precision)      # as pl.train does
    if channels_last:
        model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    sam = SAM(torch.optim.Adam(params, lr=4e-5), rho=0.05)
    criterion = PosterLoss()
    x, y = batch
    x = x.to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = y.to(device)

    def step():
        with autocast(device, precision):
            loss = criterion(model(x), y)
        loss.backward()
        sam.ascend()
        with autocast(device, precision):
            criterion(model(x), y).backward()
        sam.restore()
        sam.base.step()
        sam.base.zero_grad(set_to_none=True)
    return step


def _test_faces(n: int, quick: bool, transform=None):
    """SynthFER's test split: the default set when it is on disk; otherwise a full run
    generates it (about 3 minutes, once), while a quick run draws a small set of its own
    (under a second) so that `--quick` stays quick on a fresh clone. None without data."""
    try:
        from .data import DEFAULT_SET, data_dir, load
        from .data.synthfer import is_current
    except ImportError:
        return None
    small = quick and not is_current(data_dir() / "synthfer", **DEFAULT_SET)
    extra = dict(n_train=8, n_val=8, n_test=n, progress=False) if small else {}
    return load("synthfer", split="test", transform=transform, **extra)


def sample_faces(n: int, size: int, quick: bool = False):
    """n SynthFER test faces at `size` as (images, labels), else None."""
    from .data.transforms import eval_transform

    ds = _test_faces(n, quick, eval_transform(size))
    if ds is None:
        return None
    idx = range(min(n, len(ds)))
    return torch.stack([ds[i][0] for i in idx]), torch.tensor([ds[i][1] for i in idx])


def pipeline_speed(size: int, n: int = 256, quick: bool = False) -> dict | None:
    """Images/s of the input pipeline alone, in this process: decode only, then decode +
    eval transform, then decode + the training augmentation (one core's worth).

    Reported beside the model figures so that one can see whether a training or an
    evaluation loop waits for its data (if the pipeline is slower than the model, add
    DataLoader workers; `num_workers=` in `pl.train`).
    """
    from .data.transforms import eval_transform, train_transform

    ds = _test_faces(n, quick)
    if ds is None:
        return None
    idx = list(range(min(n, len(ds))))
    out = {"images": len(idx), "source_size": list(ds[0][0].size), "size": size}
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
    return out


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
        warmup=2, checkpoint=None, compile=False, out=None, verbose=True) -> dict:
    batches = batches or {"poster-nano": [16, 64], "poster-l": [4, 16]}
    if quick:
        batches = {m: [b[0] for b in [batches.get(m, [4])]] for m in models}
        repeats, warmup = 2, 1
    devices = devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    result = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                          "torch": torch.__version__, "threads": torch.get_num_threads(),
                          "cpu_count": os.cpu_count()}, "rows": [], "peaks": {}}
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
        log(f"[{device.type}] matmul peak: " + ", ".join(f"{k} {v / 1e12:.2f} TFLOP/s" for k, v in peaks.items()))
        for name in models:
            torch.manual_seed(0)
            model = build_model(name)
            if checkpoint and name == "poster-nano":
                from .checkpoint import load_checkpoint
                model = load_checkpoint(checkpoint)
            model.eval().to(device)
            size = model.config.input_size
            flops = complexity(model)["flops"]
            t0 = time.perf_counter()
            fast_model = fast(model, device=device, compile=compile)
            build_s = time.perf_counter() - t0
            for bs in batches.get(name, [4]):
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
                       "fast_build_s": build_s, "compile_s": compile_s}
                _finish_row(row, flops, peaks, fast_precision)
                result["rows"].append(row)
                log(_line(row))
            # One training step with SAM: both passes fwd+bwd (~3x forward each), at the larger
            # batch (training batches are large; the quick mode takes the small one). "fast" is
            # what pl.train(precision="auto") does; channels-last is measured as a candidate.
            bs = batches.get(name, [4])[0 if quick else -1]
            data = (torch.randn(bs, 3, size, size), torch.randint(0, model.config.num_classes, (bs,)))
            steps = {}
            for label, precision, channels_last in (("faithful", "fp32", False), ("fast", fast_precision, False),
                                                    ("fast + channels-last", fast_precision, True)):
                if quick and channels_last:
                    continue
                torch.manual_seed(0)
                steps[label] = sam_step_fn(build_model(name), data, device, precision, channels_last=channels_last)
            times = _interleaved(steps, device, 1, max(2, repeats - 2), 1)
            row = {"device": device.type, "model": name, "mode": "train step (SAM)", "batch": bs,
                   "fast_precision": fast_precision, "gflops_per_image": 6 * flops / 1e9,
                   "faithful": _summary(times["faithful"], bs), "fast": _summary(times["fast"], bs)}
            if "fast + channels-last" in times:
                row["fast_channels_last"] = _summary(times["fast + channels-last"], bs)
            _finish_row(row, 6 * flops, peaks, fast_precision)
            result["rows"].append(row)
            log(_line(row) + (f" | channels-last {row['fast_channels_last']['images_per_s']:.1f} img/s"
                              if "fast_channels_last" in row else ""))
            # Agreement between the paths on SynthFER faces (or random inputs without data).
            faces = sample_faces(64 if quick else 512, size, quick)
            images = faces[0] if faces is not None else torch.randn(64, 3, size, size)
            agree = agreement(model, fast_model, images)
            entry = {"device": device.type, "model": name, "inputs": "synthfer" if faces is not None else "random",
                     "top1_agreement": agree["top1_agreement"], "max_logit_diff": agree["max_logit_diff"],
                     "n": agree["n"], "trained": bool(checkpoint and name == "poster-nano")}
            if faces is not None and entry["trained"]:
                y = faces[1][: agree["n"]]
                entry["faithful_accuracy"] = (agree["faithful_pred"] == y).float().mean().item()
                entry["fast_accuracy"] = (agree["fast_pred"] == y).float().mean().item()
            result.setdefault("agreement", []).append(entry)
            log(f"  agreement {name} on {entry['n']} {entry['inputs']} inputs: top-1 "
                f"{100 * entry['top1_agreement']:.1f}%, max |logit diff| {entry['max_logit_diff']:.4f}"
                + (f", accuracy {100 * entry['faithful_accuracy']:.2f}% vs {100 * entry['fast_accuracy']:.2f}%"
                   if "fast_accuracy" in entry else ""))
            del model, fast_model
    pipe = pipeline_speed(112, n=64 if quick else 512, quick=quick)
    if pipe is not None:
        result["pipeline"] = pipe
        log(f"[data] SynthFER {pipe['source_size'][0]} px JPEGs to {pipe['size']} px, one core: "
            + ", ".join(f"{k} {v:.0f} img/s" for k, v in pipe.items() if isinstance(v, float)))
    if out:
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2))
        os.replace(tmp, out)
        log(f"saved {out}")
    return result


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
            f"({100 * row['fast_peak_fraction']:4.1f}% of its peak) | x{row['speedup']:.2f}")
