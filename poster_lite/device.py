"""Where and in what number format a model runs: one home for training, evaluation and inference.

- `pick_device`: the device asked for (checked: it must exist on this machine), else the
  best one present (CUDA, then Apple's MPS, then the CPU).
- `resolve_precision`: "auto" becomes the fastest format the device runs well
  (bf16 on GPUs and CPUs with native bf16 matrix units, fp16 on older GPUs, else fp32).
- `autocast`: the autocast context of a resolved precision (a no-op for fp32).
- `loader_options`: the DataLoader settings that keep a device fed (workers, pinned memory).
- `explicit_attention_for_training`: a context manager that trains POSTER's attention
  through its explicit softmax path while bf16 runs on a CPU, and restores the fused
  path however the block is left (a finished run, a diverged one, Ctrl-C).
"""
from __future__ import annotations

import os
from contextlib import contextmanager

import torch
from torch import nn

from .errors import UserError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# The one switch for the whole suite (pl.fast, pl.train, the ablation grid, the tour's notebooks,
# which inherit the environment): POSTER_LITE_FAST=0 runs the faithful float32 eager path.
FAST_SWITCH = "POSTER_LITE_FAST"
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def available_devices() -> list:
    """The device names this machine can run: cpu, cuda:N for each GPU, mps."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        names.append("mps")
    return names


def pick_device(device=None, local_rank: int = 0) -> torch.device:
    """The given device if this machine has it, else CUDA (this process's GPU under
    torchrun), else Apple's MPS, else the CPU. None or "auto" chooses.

    An unknown or absent device raises UserError naming the devices that are here.
    """
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    here = ", ".join(available_devices())
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise UserError(f"unknown device {device!r}; this machine has: {here}") from None
    if chosen.type == "cpu":
        return chosen
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            why = "this PyTorch is built without CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise UserError(f"device {device!r} is not available ({why}); this machine has: {here}")
        index = local_rank if chosen.index is None else chosen.index
        if index >= torch.cuda.device_count():
            raise UserError(f"device {device!r} is not available ({torch.cuda.device_count()} GPU(s)); "
                            f"this machine has: {here}")
        return torch.device("cuda", index)
    if chosen.type == "mps" and _mps_available():
        return chosen
    raise UserError(f"device {device!r} is not available; this machine has: {here}")


def cpu_has_bf16() -> bool:
    """True when the CPU has native bf16 matrix instructions (AMX or AVX512-BF16)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        from torch.cpu import _is_amx_tile_supported, _is_avx512_bf16_supported
    except ImportError:  # an older torch (pyproject allows 2.2): read the CPU flags ourselves
        try:
            flags = open("/proc/cpuinfo").read()
        except OSError:
            return False
        return "amx_bf16" in flags or "avx512_bf16" in flags
    return bool(_is_amx_tile_supported() or _is_avx512_bf16_supported())


# bf16 matrix units arrived with Ampere (compute capability 8.0: A100, RTX 30xx); a T4 (7.5) or
# V100 (7.0) only emulates bf16, slower than its fp16 tensor cores, so those get fp16 + a GradScaler.
NATIVE_BF16_CAPABILITY = (8, 0)


def gpu_has_native_bf16(device=None) -> bool:
    """True when this CUDA GPU computes in bf16 natively (compute capability 8.0 or newer).

    torch.cuda.is_bf16_supported() alone also says yes for emulated bf16 (its default
    including_emulation=True), which is how a T4 used to get bf16 instead of fp16.
    """
    index = torch.device(device).index if device is not None else None
    if tuple(torch.cuda.get_device_capability(index)) < NATIVE_BF16_CAPABILITY:
        return False
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:          # a torch before 2.3 has no including_emulation (and did not emulate)
        return bool(torch.cuda.is_bf16_supported())


def fast_path_enabled() -> bool:
    """False when the environment says POSTER_LITE_FAST=0 (the faithful path everywhere)."""
    value = os.environ.get(FAST_SWITCH, "1").strip()
    if value not in ("0", "1"):
        raise UserError(f"{FAST_SWITCH} must be 1 (the fast path, the default) or 0 (the faithful float32 "
                        f"eager path), got {value!r}")
    return value == "1"


def resolve_precision(precision: str, device: torch.device) -> str:
    """"auto" -> the fastest precision this device runs well; the others are checked.

    CUDA: bf16 on GPUs with native bf16 (compute capability >= 8.0: A100, H100, RTX 30xx/40xx),
    else fp16 (T4, V100), which pl.train pairs with a GradScaler. CPU: bf16 where the CPU
    has bf16 matrix instructions, else fp32. MPS: fp32.

    The environment variable POSTER_LITE_PRECISION replaces "auto" (never an explicit choice);
    else POSTER_LITE_FAST=0 makes "auto" fp32 (the faithful path).
    """
    if precision not in PRECISIONS:
        raise UserError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    from_env = os.environ.get("POSTER_LITE_PRECISION")
    if from_env and precision == "auto":
        if from_env not in PRECISIONS:
            raise UserError(f"POSTER_LITE_PRECISION must be one of {PRECISIONS}, got {from_env!r}")
        precision = from_env
    if precision != "auto":
        return precision
    if not fast_path_enabled():
        return "fp32"
    if device.type == "cuda":
        return "bf16" if gpu_has_native_bf16(device) else "fp16"
    if device.type == "cpu":
        return "bf16" if cpu_has_bf16() else "fp32"
    return "fp32"          # MPS: autocast support varies across macOS releases


def usable_cpus() -> int:
    """CPU cores this process may run on (its affinity: a container's or a scheduler's share),
    not the machine's count that os.cpu_count() gives."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):          # macOS and Windows have no affinity call
        return max(1, os.cpu_count() or 1)


# At most this many loader processes per GPU: beyond it the decode rate no longer grows
# (the GPU takes the images as fast as they come) and each worker holds its own memory.
MAX_WORKERS_PER_GPU = 8
# Batches each worker prepares ahead (DataLoader's default is 2): a step that follows a
# slow batch finds the next one ready.
PREFETCH_BATCHES = 4


def loader_options(device, num_workers: int | None = None, processes: int = 1, cpus: int | None = None) -> dict:
    """The DataLoader keywords that keep `device` fed (pl.train builds its loader with them).

    On CUDA the images are decoded and augmented in worker processes while the GPU computes:
    by default one per usable CPU core, shared between the `processes` of a torchrun job, one
    core left for the process that drives the GPU, at most MAX_WORKERS_PER_GPU; pinned memory
    (faster, asynchronous copies to the GPU), workers kept between epochs (no restart each
    epoch) and PREFETCH_BATCHES batches prepared ahead. On a CPU the default is 0 workers:
    the training step itself needs the cores, and decoding in the same process is the
    fastest there. `num_workers` given (not None) is taken as it is.
    """
    device = torch.device(device)
    if num_workers is None:
        if device.type == "cuda":
            per_process = (cpus if cpus is not None else usable_cpus()) // max(1, processes)
            num_workers = max(1, min(MAX_WORKERS_PER_GPU, per_process - 1))
        else:
            num_workers = 0
    options = {"num_workers": num_workers, "pin_memory": device.type == "cuda"}
    if num_workers > 0:
        options.update(persistent_workers=True, prefetch_factor=PREFETCH_BATCHES if device.type == "cuda" else 2)
    return options


def autocast(device: torch.device, precision: str):
    """An autocast context for a resolved precision (a no-op for fp32)."""
    dtype = _DTYPES[precision]
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


@contextmanager
def explicit_attention_for_training(model: nn.Module, device, precision: str, enabled: bool = True):
    """Inside the block, POSTER's attention runs the explicit softmax path if bf16 trains on a CPU.

    PyTorch's fused CPU attention has a slow bf16 backward for POSTER's small heads:
    poster-nano fwd+bwd 77 img/s fused vs 105 explicit, poster-l 4.5 vs 5.0, the nano
    fusion alone 45 vs 100 (benchmarks/README.md). Same maths (tests check both paths
    agree). Every switched module is fused again when the block is left, by any exit.
    enabled=False (pl.train's fast=False) leaves the attention as it is.
    """
    switched = []
    if enabled and torch.device(device).type == "cpu" and precision == "bf16":
        switched = [m for m in model.modules() if getattr(m, "fused", None) is True]
    for m in switched:
        m.fused = False
    try:
        yield switched
    finally:
        for m in switched:
            m.fused = True
