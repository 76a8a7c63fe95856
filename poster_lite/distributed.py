"""Distributed data-parallel helpers: the few calls the training loop needs.

Launch with PyTorch's own launcher, which starts one process per GPU (or CPU
worker) and sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR for each:

    python -m torch.distributed.run --nproc_per_node 2 -m poster_lite.cli train ...

Every process runs the same script. Each sees its own share of every batch;
DistributedDataParallel averages the gradients across processes in backward, so
all copies of the model take the same step. Only rank 0 evaluates, prints and
writes files. Without torchrun these helpers describe a world of one process.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup() -> tuple[int, int, int]:
    """(rank, world_size, local_rank), joining the process group torchrun prepared."""
    if launched_by_torchrun() and not dist.is_initialized():
        # NCCL talks GPU to GPU; gloo is the CPU backend (and what the tests use).
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))
    return 0, 1, 0


def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def broadcast(obj):
    """Rank 0's `obj` on every rank (a no-op in a single process)."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj) -> list:
    """[obj of rank 0, obj of rank 1, ...] on every rank ([obj] in a single process)."""
    if not dist.is_initialized():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def sum_across(values: list[float], device) -> list[float]:
    """Element-wise sum of `values` over all ranks."""
    if not dist.is_initialized():
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
