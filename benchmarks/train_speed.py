"""Training speed of the engine's real step (SAM: two forward/backward passes per batch).

    python benchmarks/train_speed.py                       # poster-nano and poster-l, this machine
    python benchmarks/train_speed.py --models poster-nano --precisions fp32 bf16 --threads 1

Prints images per second of training (not counting evaluation) per model, precision
and device. Random tensors stand in for images, so data loading costs nothing here.
Numbers are printed, never asserted: they depend on the machine and on its load.
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from poster_lite import build_model
from poster_lite.device import pick_device, resolve_precision
from poster_lite.losses import PosterLoss
from poster_lite.sam import SAM
from poster_lite.training.loop import train_one_epoch
from poster_lite.training.recipe import Recipe, make_optimizer


def images_per_second(model_name: str, precision: str, device: torch.device, batch_size: int, steps: int,
                      sam: bool = True) -> float:
    torch.manual_seed(0)
    model = build_model(model_name).to(device)
    size = model.config.input_size
    data = TensorDataset(torch.randn(batch_size * steps, 3, size, size), torch.randint(0, 7, (batch_size * steps,)))
    optimizer = make_optimizer(model, Recipe(lr=1e-4))
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    args = (PosterLoss(), optimizer, SAM(optimizer) if sam else None, scaler, device, precision)
    warm_up = DataLoader(TensorDataset(*data[:batch_size]), batch_size=batch_size)
    train_one_epoch(model, warm_up, *args, tqdm(disable=True))          # first-call set-up costs
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    train_one_epoch(model, DataLoader(data, batch_size=batch_size), *args, tqdm(disable=True))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch_size * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["poster-nano", "poster-l"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "auto"])
    parser.add_argument("--device", default=None)
    parser.add_argument("--batch-size", type=int, default=None, help="default: 32 for nano, 8 otherwise (CPU)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 5 for nano, 2 otherwise)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--no-sam", action="store_true", help="time plain steps (one pass per batch)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{'plain' if args.no_sam else 'SAM'} steps")
    print(f"{'model':<14}{'precision':<13}{'batch':>6}{'images/s':>10}")
    for name in args.models:
        nano = name.endswith("nano")
        gpu = device.type == "cuda"
        batch = args.batch_size or (64 if gpu else 32 if nano else 8)
        steps = args.steps or (20 if gpu else 5 if nano else 2)
        for requested in args.precisions:
            precision = resolve_precision(requested, device)
            speed = images_per_second(name, precision, device, batch, steps, sam=not args.no_sam)
            label = precision if requested != "auto" else f"{precision} (auto)"
            print(f"{name:<14}{label:<13}{batch:>6}{speed:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
