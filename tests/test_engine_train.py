"""The training loop on poster-nano with tiny in-memory data: files, selection, NaN stop,
determinism, and resume after a real kill."""
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from poster_lite import build_model
from poster_lite.checkpoint import load_checkpoint, read_checkpoint_file
from poster_lite.device import cpu_has_bf16, resolve_precision
from poster_lite.errors import UserError
from poster_lite.losses import PosterLoss
from poster_lite.training import HISTORY_COLUMNS, TrainingDiverged, train

# Tiny models on a 2-core machine: see the one_thread fixture in conftest.py.
pytestmark = pytest.mark.usefixtures("one_thread")

TINY_DATA = '''
import torch
class Tiny(torch.utils.data.Dataset):
    """Noise images whose class c has a bright square in colour channel c."""
    classes = ["red", "green", "blue"]

    def __init__(self, n, seed, size=112, delay=0.0):
        g = torch.Generator().manual_seed(seed)
        self.targets = torch.randint(0, 3, (n,), generator=g).tolist()
        self.images = torch.randn(n, 3, size, size, generator=g) * 0.5
        for i, c in enumerate(self.targets):
            self.images[i, c, 30:80, 30:80] += 1.5
        self.delay = delay

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        if self.delay:
            import time
            time.sleep(self.delay)
        return self.images[i], self.targets[i]
'''
_namespace: dict = {}
exec(TINY_DATA, _namespace)       # one definition for this module and the subprocess script below
Tiny = _namespace["Tiny"]


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return build_model("poster-nano", num_classes=3)


def quick(model, out_dir=None, epochs=2, **kw):
    kw.setdefault("lr", 1e-3)
    kw.setdefault("allow_random_landmarks", True)          # tiny runs from random backbones, on purpose
    return train(model, Tiny(16, 0), Tiny(12, 1), epochs=epochs, batch_size=8, out_dir=out_dir,
                 test_set=kw.pop("test_set", Tiny(12, 2)), progress=False, **kw)


def test_training_writes_history_and_checkpoints_and_learns(tmp_path):
    model = tiny_model()
    history = quick(model, tmp_path, epochs=3, tensorboard=True)
    assert list(history.columns) == HISTORY_COLUMNS and history["epoch"].tolist() == [1, 2, 3]
    assert history["lr"].tolist() == pytest.approx([1e-3, 0.98e-3, 0.98 ** 2 * 1e-3])
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert history["val_acc"].max() > 0.6                                # chance is 1/3
    assert (history["images_per_s"] > 0).all()
    assert {"last", "best", "history.csv", "history.json", "results.json"} <= {p.name for p in tmp_path.iterdir()}
    on_disk = pd.read_csv(tmp_path / "history.csv")
    assert np.allclose(on_disk["val_acc"], history["val_acc"])
    best = load_checkpoint(tmp_path / "best")
    assert best.meta["classes"] == ["red", "green", "blue"] and best.meta["epoch"] == history.attrs["best_epoch"]
    assert best.meta["metrics"]["test_accuracy"] == history.attrs["test"]["accuracy"]
    x = Tiny(4, 3).images
    assert torch.equal(best(x), model(x))                               # the model returns holding the best epoch
    assert read_checkpoint_file(tmp_path / "last")["training"]["epoch"] == 3
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tensorboard").iterdir())


def test_same_seed_same_run():
    a, b = quick(tiny_model(), epochs=1), quick(tiny_model(), epochs=1)
    assert a.drop(columns="images_per_s").equals(b.drop(columns="images_per_s"))


def test_recipe_pieces_switch_and_unknown_options_are_named():
    history = quick(tiny_model(), epochs=1, sam=False, optimizer="adamw", smoothing_weight=0, schedule="constant",
                    precision="fp32")
    assert history["lr"].tolist() == [1e-3]
    with pytest.raises(TypeError, match="learning_rate"):
        quick(tiny_model(), learning_rate=0.1)
    with pytest.raises(ValueError, match="schedule"):
        quick(tiny_model(), schedule="warmup")


def test_auto_precision():
    assert resolve_precision("auto", torch.device("cpu")) == ("bf16" if cpu_has_bf16() else "fp32")
    assert resolve_precision("fp16", torch.device("cpu")) == "fp16"
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp8", torch.device("cpu"))


def test_selection_on_test_is_the_release_protocol():
    history = quick(tiny_model(), epochs=2, selection="test")
    assert {"test_acc", "test_macc"} <= set(history.columns)
    best = history.attrs["best_epoch"]
    assert history.attrs["selection"] == "test"
    assert history.attrs["test"]["accuracy"] == history.loc[history["epoch"] == best, "test_acc"].item()
    with pytest.raises(ValueError, match="test_set"):
        quick(tiny_model(), selection="test", test_set=None)


def test_nan_loss_stops_naming_epoch_and_step_and_keeps_the_last_good_checkpoint(tmp_path):
    calls = {"n": 0}
    recipe_loss = PosterLoss()

    def poisoned(logits, target):
        calls["n"] += 1
        loss = recipe_loss(logits, target)
        # 2 steps per epoch, 2 passes per step (SAM): call 6 is epoch 2, step 1, SAM's pass.
        return loss * float("nan") if calls["n"] == 6 else loss

    model = tiny_model()
    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 1") as err:
        quick(model, tmp_path, epochs=3, criterion=poisoned)
    assert "last" in str(err.value) and "epoch 1" in str(err.value)
    kept = read_checkpoint_file(tmp_path / "last")
    assert kept["meta"]["epoch"] == 1
    assert all(torch.isfinite(t).all() for t in kept["state_dict"].values() if t.is_floating_point())
    assert all(torch.isfinite(p).all() for p in model.parameters())     # SAM's detour was undone



def test_a_diverging_bf16_run_leaves_attention_fused(tmp_path):
    """bf16 training on a CPU switches attention to the explicit path; a run that stops on a
    NaN must switch it back like a finished one."""
    model = tiny_model()
    seen = []
    attention = next(iter(model.attention_modules().values()))
    attention.register_forward_pre_hook(lambda module, args: seen.append(module.fused))

    def nan_loss(logits, target):
        return PosterLoss()(logits, target) * float("nan")

    with pytest.raises(TrainingDiverged, match="epoch 1, step 1"):
        quick(model, tmp_path, epochs=2, precision="bf16", criterion=nan_loss)
    assert seen[0] is False                                    # it did train through the explicit path
    assert all(m.fused for m in model.modules() if hasattr(m, "fused"))
    assert not (tmp_path / "run.lock").exists()              # and let go of its folder


def test_a_run_folder_is_continued_or_replaced_only_when_asked(tmp_path):
    quick(tiny_model(), tmp_path, epochs=1)
    best = (tmp_path / "best").read_bytes()
    with pytest.raises(UserError, match="already holds a training run.*resume=True.*overwrite=True"):
        quick(tiny_model(), tmp_path, epochs=1)
    assert (tmp_path / "best").read_bytes() == best           # nothing was touched
    with pytest.raises(UserError, match="nothing to resume"):
        quick(tiny_model(), tmp_path / "empty", resume=True)
    assert not (tmp_path / "empty").exists()
    with pytest.raises(UserError, match=r"recipe.lr 0.001 -> 0.01"):
        quick(tiny_model(), tmp_path, epochs=2, resume=True, lr=1e-2)
    with pytest.raises(UserError, match=r"data.train_images 16 -> 24"):
        train(tiny_model(), Tiny(24, 0), Tiny(12, 1), epochs=2, batch_size=8, out_dir=tmp_path, resume=True,
              test_set=Tiny(12, 2), progress=False, lr=1e-3, allow_random_landmarks=True)
    with pytest.raises(UserError, match=r"model.config.depth 2 -> 3"):
        torch.manual_seed(0)
        quick(build_model("poster-nano", num_classes=3, depth=3), tmp_path, epochs=2, resume=True)
    assert (tmp_path / "best").read_bytes() == best
    quick(tiny_model(), tmp_path, epochs=2, resume=True)        # the same settings continue
    assert read_checkpoint_file(tmp_path / "last")["training"]["epoch"] == 2
    history = quick(tiny_model(), tmp_path, epochs=1, overwrite=True)
    assert history["epoch"].tolist() == [1] and read_checkpoint_file(tmp_path / "last")["training"]["epoch"] == 1


def test_the_lock_refuses_a_second_writer_and_clears_a_dead_ones(tmp_path, capsys):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "run.lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    with pytest.raises(UserError, match=f"in use by a training \\(PID {os.getpid()}.*rm {busy / 'run.lock'}"):
        quick(tiny_model(), busy, epochs=1)
    assert [p.name for p in busy.iterdir()] == ["run.lock"]
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()                                          # a PID that no longer runs
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / "run.lock").write_text(json.dumps({"pid": finished.pid, "host": socket.gethostname()}))
    quick(tiny_model(), stale, epochs=1)
    assert f"cleared {stale / 'run.lock'}" in capsys.readouterr().err
    assert (stale / "last").exists() and not (stale / "run.lock").exists()


def test_public_functions_check_their_arguments():
    import poster_lite as pl

    for bad, words in ((dict(epochs=0), "epochs must be a whole number >= 1, got 0"),
                       (dict(lr=-1.0), "lr must be a number > 0"), (dict(gamma=2.0), r"gamma must be a number in \(0, 1\]"),
                       (dict(device="tpu"), "unknown device 'tpu'; this machine has: cpu"),
                       (dict(sam="yes"), "sam must be True or False")):
        with pytest.raises(UserError, match=words):
            quick(tiny_model(), **bad)
    with pytest.raises(UserError, match="batch_size must be a whole number >= 1"):
        train(tiny_model(), Tiny(16, 0), Tiny(12, 1), batch_size=0)
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="'cuda' is not available"):
            quick(tiny_model(), device="cuda")
    with pytest.raises(UserError, match="batch_size must be a whole number >= 1"):
        pl.evaluate(tiny_model(), Tiny(4, 0), batch_size=0)
    with pytest.raises(UserError, match="Known presets: poster-t"):
        pl.trained_model("poster-xl")
    with pytest.raises(UserError, match="unknown device"):
        pl.trained_model("poster-nano", device="tpu")

SCRIPT = TINY_DATA + '''
import os
import sys
torch.set_num_threads(1)
from poster_lite import build_model
from poster_lite.training import train
out, delay = sys.argv[1], float(sys.argv[2])
torch.manual_seed(0)
model = build_model("poster-nano", num_classes=3)
# resume=True with nothing to resume is an error: resume only a run that wrote `last`.
resume = os.path.exists(os.path.join(out, "last"))
train(model, Tiny(16, 0, delay=delay), Tiny(12, 1), epochs=3, batch_size=8, out_dir=out, resume=resume,
      lr=1e-3, progress=False, allow_random_landmarks=True)
'''


def test_resume_after_kill_matches_an_uninterrupted_run(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    killed, whole = tmp_path / "killed", tmp_path / "whole"

    # Slow data loading (0.2 s per image) leaves seconds to kill the run inside epoch 2.
    proc = subprocess.Popen([sys.executable, str(script), str(killed), "0.2"], env=env)
    deadline = time.time() + 120
    while not (killed / "last").exists():
        assert proc.poll() is None, "the run ended before writing its first checkpoint"
        assert time.time() < deadline, "no checkpoint after 120 s"
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert read_checkpoint_file(killed / "last")["training"]["epoch"] == 1

    for out in (killed, whole):
        subprocess.run([sys.executable, str(script), str(out), "0"], env=env, check=True, timeout=300)
    resumed, uninterrupted = read_checkpoint_file(killed / "last"), read_checkpoint_file(whole / "last")
    assert resumed["training"]["epoch"] == uninterrupted["training"]["epoch"] == 3
    for key, value in uninterrupted["state_dict"].items():
        assert torch.equal(resumed["state_dict"][key], value), key
    drop_speed = lambda rows: [{k: v for k, v in r.items() if k != "images_per_s"} for r in rows]
    assert drop_speed(resumed["training"]["history"]) == drop_speed(uninterrupted["training"]["history"])
