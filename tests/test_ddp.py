"""Distributed data-parallel training through torchrun: gloo on CPU, two processes.

The model has no BatchNorm on purpose: with BatchNorm each process normalises with
its own half-batch statistics, so DDP would legitimately differ from one process.
Without it, two processes with half the batch each must take the same steps as one
process with the whole batch (SAM included: its ascent uses the averaged gradient).
"""
import json
import os
import subprocess
import sys

import pytest
import torch

from poster_lite.checkpoint import read_checkpoint_file

SCRIPT = '''
import json, sys
import torch
from torch import nn

torch.set_num_threads(1)
import poster_lite.training.run as run_folder
from poster_lite import distributed
from poster_lite.training import train


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, stride=2)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


class Data(torch.utils.data.Dataset):
    classes = ["a", "b", "c"]

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.targets = torch.randint(0, 3, (n,), generator=g).tolist()
        self.images = torch.randn(n, 3, 16, 16, generator=g)
        for i, c in enumerate(self.targets):
            self.images[i, c] += 1.0

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.images[i], self.targets[i]


writes = []
original_save = run_folder.save_checkpoint
def counting_save(model, path, *args, **kw):
    writes.append(str(path))
    return original_save(model, path, *args, **kw)
run_folder.save_checkpoint = counting_save

out = sys.argv[1]
torch.manual_seed(0)
model = TinyNet()
history = train(model, Data(32, 0), Data(16, 1), epochs=2, batch_size=8, out_dir=out,
                test_set=Data(16, 2), precision="fp32", lr=0.02, progress=False)
rank, world, _ = distributed.setup()
json.dump({"world": world, "writes": writes, "history": history.drop(columns="images_per_s").to_dict("list")},
          open(f"{out}/rank{rank}.json", "w"))
distributed.cleanup()
'''


def _run(args, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")}
    env["PYTHONPATH"] = os.getcwd()
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)


def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path):
    script = tmp_path / "ddp_script.py"
    script.write_text(SCRIPT)
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    one = _run([sys.executable, str(script), str(single)], tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                str(script), str(ddp)], tmp_path)
    assert two.returncode == 0, two.stderr[-3000:]

    ranks = [json.loads((ddp / f"rank{r}.json").read_text()) for r in (0, 1)]     # both ranks finished
    alone = json.loads((single / "rank0.json").read_text())
    assert ranks[0]["world"] == ranks[1]["world"] == 2 and alone["world"] == 1
    # Only rank 0 writes, and exactly what the single process writes.
    assert ranks[1]["writes"] == []
    assert [os.path.basename(p) for p in ranks[0]["writes"]] == [os.path.basename(p) for p in alone["writes"]]
    assert {p.name for p in ddp.iterdir()} == {p.name for p in single.iterdir()} | {"rank1.json"}

    for key, values in alone["history"].items():
        assert ranks[0]["history"][key] == pytest.approx(values, abs=1e-5), key
        assert ranks[1]["history"][key] == pytest.approx(values, abs=1e-5), key
    distributed_last, single_last = read_checkpoint_file(ddp / "last"), read_checkpoint_file(single / "last")
    for key, value in single_last["state_dict"].items():
        assert torch.allclose(distributed_last["state_dict"][key], value, atol=1e-5), key
    assert alone["history"]["train_loss"][1] < alone["history"]["train_loss"][0]     # it did learn
