"""How a training run ends: early stopping on validation (patience), the epoch cap, the time
budget, and the estimate of the total time printed from the first steps."""
import json

import pytest
import torch
from torch import nn

from poster_lite.cli import main
from poster_lite.errors import UserError
from poster_lite.training import train
from poster_lite.training.loop import ESTIMATE_STEPS, RunClock, duration

pytestmark = pytest.mark.usefixtures("one_thread")


class Net(nn.Module):
    """No BatchNorm and no dropout: with a learning rate far below float32's resolution the
    weights never move, so every epoch scores exactly the same."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)))


class Data(torch.utils.data.Dataset):
    classes = ["a", "b", "c"]

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randn(n, 3, 8, 8, generator=g)
        self.targets = torch.randint(0, 3, (n,), generator=g).tolist()
        for i, c in enumerate(self.targets):
            self.images[i, c] += 2.0                    # learnable: the class is the bright channel

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.images[i], self.targets[i]


def run(out=None, **kw):
    torch.manual_seed(0)
    kw = {"epochs": 8, "batch_size": 8, "precision": "fp32", "sam": False, "progress": False, **kw}
    return train(Net(), Data(32, 0), Data(16, 1), out_dir=out, **kw)


def test_patience_stops_a_run_whose_validation_no_longer_improves(tmp_path):
    history = run(tmp_path, lr=1e-12, patience=2)            # the weights cannot move: epoch 1 stays best
    assert history["epoch"].tolist() == [1, 2, 3]
    assert history.attrs["best_epoch"] == 1
    ending = {k: history.attrs[k] for k in ("epochs_trained", "max_epochs", "patience", "stopped_by", "converged")}
    assert ending == {"epochs_trained": 3, "max_epochs": 8, "patience": 2, "stopped_by": "patience",
                      "converged": True}
    results = json.loads((tmp_path / "results.json").read_text())
    assert {k: results[k] for k in ending} == ending


def test_a_run_that_reaches_the_cap_is_not_converged():
    history = run(lr=0.05, epochs=2, patience=5)
    assert len(history) == 2
    assert history.attrs["stopped_by"] == "max_epochs" and history.attrs["converged"] is False
    plain = run(lr=0.05, epochs=2)                             # default: no early stopping, same run
    assert plain.attrs["patience"] is None and plain.attrs["stopped_by"] == "max_epochs"
    assert plain["val_loss"].tolist() == history["val_loss"].tolist()


def test_a_resumed_run_that_had_converged_trains_no_further(tmp_path):
    run(tmp_path, lr=1e-12, patience=2, epochs=3)
    again = run(tmp_path, lr=1e-12, patience=2, epochs=8, resume=True)
    assert again["epoch"].tolist() == [1, 2, 3] and again.attrs["stopped_by"] == "patience"


def test_the_time_budget_stops_cleanly_after_an_epoch(tmp_path):
    history = run(tmp_path, lr=0.05, epochs=5, time_budget=1e-5)      # 0.6 ms: no second epoch fits
    assert history["epoch"].tolist() == [1]
    assert history.attrs["stopped_by"] == "time_budget" and history.attrs["converged"] is False
    assert history.attrs["time_budget_min"] == 1e-5 and history.attrs["estimated_s"] > 0
    assert json.loads((tmp_path / "results.json").read_text())["stopped_by"] == "time_budget"
    assert (tmp_path / "best").exists() and (tmp_path / "last").exists()     # a finished run's files
    roomy = run(lr=0.05, epochs=2, time_budget=60)
    assert len(roomy) == 2 and roomy.attrs["stopped_by"] == "max_epochs"


def test_the_estimate_is_printed_before_the_run_goes_on(capsys):
    run(lr=0.05, epochs=2, progress=True, time_budget=60)
    out = capsys.readouterr().out
    line = next(t for t in out.splitlines() if "time estimate:" in t)
    assert "s per step x 8 steps (2 epoch(s))" in line and "the budget of 60.0 min fits about 2 epoch(s)" in line
    assert out.index("time estimate:") < out.index("epoch 1/2")          # said before the first epoch ends


def test_the_clock_times_steps_after_the_warm_up_and_stops_by_budget():
    # the clock starts, the epoch starts, the warm-up step ends, the timed steps end, the epoch ends,
    # out_of_time looks
    times = iter([0.0, 0.0, 5.0, 5.0 + ESTIMATE_STEPS, 12.0, 12.0])
    said = []
    clock = RunClock(steps_per_epoch=10, epochs_left=3, budget_s=25.0, say=said.append, now=lambda: next(times))
    clock.start_epoch()
    for step in range(1, ESTIMATE_STEPS + 2):
        clock.step(step)
    assert clock.step_s == 1.0 and clock.estimate_s == 30.0       # 1 s per step (the warm-up left out) x 30
    assert said == ["time estimate: 1 s per step x 30 steps (3 epoch(s)) = 30 s of training, plus an evaluation "
                    "after each epoch; the budget of 25 s fits about 2 epoch(s)"]
    clock.end_epoch()
    assert clock.last_epoch_s == 12.0 and not clock.out_of_time()          # 12 + 12 <= 25
    clock.now = lambda: 24.0
    assert clock.out_of_time()                                             # 24 + 12 > 25
    assert duration(45) == "45 s" and duration(750) == "12.5 min" and duration(3 * 3600) == "3.0 h"


def test_a_short_epoch_is_estimated_at_its_end():
    times = iter([0.0, 0.0, 1.0, 4.0])          # start, epoch start, warm-up step, epoch end
    said = []
    clock = RunClock(steps_per_epoch=2, epochs_left=5, say=said.append, now=lambda: next(times))
    clock.start_epoch()
    clock.step(1)
    clock.step(2)
    assert clock.estimate_s is None
    clock.end_epoch()
    assert clock.step_s == 2.0 and clock.estimate_s == 20.0 and len(said) == 1


def test_bad_values_are_refused():
    with pytest.raises(UserError, match="patience must be a whole number >= 1"):
        run(patience=0)
    with pytest.raises(UserError, match="time_budget must be a number > 0"):
        run(time_budget=-1)


def test_the_command_line_takes_patience_and_a_budget(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--model", "poster-nano", "--data", "synthfer", "--epochs", "3", "--batch-size", "8",
                 "--limit", "16", "--backbones", "none", "--no-sam", "--patience", "1", "--time-budget", "1e-5",
                 "--precision", "fp32", "--out", str(out), "--quiet"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["patience"] == 1 and results["max_epochs"] == 3 and results["time_budget_min"] == 1e-5
    assert results["stopped_by"] == "time_budget" and results["epochs_trained"] == 1
    assert "stopped by the time budget" in capsys.readouterr().out
    assert main(["train", "--patience", "0"]) == 2
