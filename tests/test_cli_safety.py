"""The command line as a user meets it: bad values, a busy or finished run folder, a full disk.

One policy (poster_lite/cli/__init__.py): a user's mistake or a problem of the environment
is one or two lines and exit code 2, never a traceback; an internal error is exit code 1,
with the traceback only behind --debug.
"""
import argparse
import errno
import importlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from poster_lite.cli import build_parser, main

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--model", "poster-nano", "--data", "synthfer", "--epochs", "1", "--batch-size", "8", "--limit", "16",
        "--backbones", "none", "--no-sam", "--quiet"]


def cli(*args, wait=True):
    """`poster-lite ARGS` in a subprocess, as a user runs it."""
    env = dict(os.environ, PYTHONPATH=os.getcwd(), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "poster_lite.cli", *map(str, args)]
    if not wait:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


# One bad value per subcommand, each in its own process: exit 2, a message, no traceback.
BAD_COMMANDS = {
    "train": (["train", "--epochs", "0"], "--epochs: must be a whole number >= 1, got '0'"),
    "evaluate": (["evaluate", "--checkpoint", "nowhere/best"], "checkpoint not found: nowhere/best"),
    "predict": (["predict", "x.jpg", "--checkpoint", "c", "--margin", "-0.6"], "--margin: must be a number in [0, 1]"),
    "pretrain-backbones": (["pretrain-backbones", "--device", "tpu"], "unknown device 'tpu'"),
    "complexity": (["complexity", "--input-size", "0"], "--input-size: must be a whole number in [1, 2048]"),
    "synthfer": (["synthfer", "--out", "x", "--n-val", "-5"], "--n-val: must be a whole number >= 0"),
    "data check": (["data", "check", "no/such/folder"], "no/such/folder does not exist"),
    "bench": (["bench", "--models", "poster-xl"], "Unknown model name 'poster-xl'"),
    "fetch-official": (["fetch-official", "--preset", "poster-xl"], "Unknown model name 'poster-xl'"),
}


def registered_subcommands() -> list:
    """Every command the CLI registers ("data check" for a command with actions)."""
    def subparsers(parser):
        return [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    names = []
    for name, parser in subparsers(build_parser())[0].choices.items():
        nested = subparsers(parser)
        names += [f"{name} {action}" for action in nested[0].choices] if nested else [name]
    return names


@pytest.mark.parametrize("command", registered_subcommands())
def test_every_subcommand_answers_a_bad_value_with_a_message_and_exit_2(command):
    assert command in BAD_COMMANDS, f"add a bad value for `poster-lite {command}` to BAD_COMMANDS"
    argv, words = BAD_COMMANDS[command]
    done = cli(*argv)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and words in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2


# Many more, in this process (the same main() the console script runs).
BAD_VALUES = [
    (["train", "--batch-size", "0"], "must be a whole number >= 1"),
    (["train", "--lr", "-1"], "--lr: must be a number > 0"),
    (["train", "--lr", "nan"], "--lr: must be a number > 0"),
    (["train", "--lr", "fast"], "--lr: must be a number > 0, got 'fast'"),
    (["train", "--gamma", "1.5"], "--gamma: must be a number in (0, 1]"),
    (["train", "--rho", "0"], "--rho: must be a number > 0"),
    (["train", "--smoothing", "1"], "--smoothing: must be a number in [0, 1)"),
    (["train", "--smoothing-weight", "-2"], "--smoothing-weight: must be a number >= 0"),
    (["train", "--weight-decay", "-0.1"], "--weight-decay: must be a number >= 0"),
    (["train", "--seed", "-3"], "--seed: must be a whole number in [0, 4294967295]"),
    (["train", "--workers", "-1"], "must be a whole number >= 0"),
    (["train", "--epochs", "2.5"], "--epochs: must be a whole number >= 1, got '2.5'"),
    (["train", "--limit", "0"], "--limit: must be a whole number >= 1"),
    (["train", "--model", "poster-xl"], "Known presets: poster-t"),
    (["train", "--optimizer", "lion"], "invalid choice: 'lion'"),
    (["train", "--device", "tpu"], "unknown device 'tpu'"),
    (["train", "--resume", "--overwrite"], "not allowed with argument"),
    (["train", "--data", "no/such/data", "--out", "{tmp}/run"], "'no/such/data' is neither a known data set"),
    (["train", "--backbones", "no/such/folder", "--out", "{tmp}/run2", "--limit", "8"], "no such folder"),
    (["train", "--resume", "--out", "{tmp}/never"], "nothing to resume in"),
    (["evaluate", "--checkpoint", "c", "--batch-size", "-4"], "--batch-size: must be a whole number >= 1"),
    (["evaluate", "--checkpoint", "c", "--split", "dev"], "invalid choice: 'dev'"),
    (["evaluate", "--checkpoint", "{tmp}"], "is a folder, not a checkpoint file"),
    (["evaluate", "--checkpoint", "{tmp}/pickled.pt"], "pickled Python object"),
    (["evaluate", "--checkpoint", "{tmp}/notes.txt"], "is not a readable checkpoint"),
    (["predict", "x.jpg", "--checkpoint", "{tmp}/missing"], "checkpoint not found"),
    (["pretrain-backbones", "--epochs", "0"], "--epochs: must be a whole number >= 1"),
    (["pretrain-backbones", "--lr", "0"], "--lr: must be a number > 0"),
    (["pretrain-backbones", "--model", "poster-xxl"], "Unknown model name"),
    (["pretrain-backbones", "--data", "no/such/folder"], "give synthfer or the folder of a SynthFER set"),
    (["complexity", "--input-size", "100000"], "must be a whole number in [1, 2048]"),
    (["complexity", "--model", "poster-xl"], "Unknown model name"),
    (["synthfer", "--out", "{tmp}/s", "--size", "10", "--quiet"], "size must be between 32 and 1024"),
    (["synthfer", "--out", "{tmp}/s", "--difficulty", "9", "--quiet"], "difficulty must be between"),
    (["synthfer", "--out", "{tmp}/s", "--label-noise", "1", "--quiet"], "label_noise must be in [0, 1)"),
    (["bench", "--repeats", "0"], "--repeats: must be a whole number >= 1"),
    (["bench", "--devices", "tpu"], "unknown device 'tpu'"),
]


class Secret:
    """Stands for any Python object pickled into a checkpoint (which could run code on loading)."""


@pytest.mark.parametrize("argv, words", BAD_VALUES, ids=[" ".join(a[:3]) for a, _ in BAD_VALUES])
def test_bad_values_are_refused_with_what_is_allowed(argv, words, tmp_path, capsys):
    torch.save({"weights": torch.zeros(2), "extra": Secret()}, tmp_path / "pickled.pt")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err
    assert "weights_only=False" not in err           # never torch's advice to unpickle anyway
    assert not (tmp_path / "run").exists() and not (tmp_path / "never").exists()    # nothing left behind


def test_a_second_training_into_a_busy_folder_is_refused_and_a_finished_run_is_kept(tmp_path):
    out = tmp_path / "run"
    first = cli("train", *TINY, "--out", out, wait=False)
    deadline = time.time() + 120
    while not (out / "run.lock").exists():
        assert first.poll() is None, first.communicate()[1]
        assert time.time() < deadline, "the first training never locked its folder"
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGSTOP)               # hold the first one inside its run
    try:
        second = cli("train", *TINY, "--out", out)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert second.returncode == 2 and "Traceback" not in second.stderr
    assert f"{out} is in use by a training (PID {first.pid}" in second.stderr
    assert first.wait(timeout=300) == 0, first.communicate()[1]
    best = (out / "best").read_bytes()

    again = cli("train", *TINY, "--out", out)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert "already holds a training run" in again.stderr and "--resume" in again.stderr
    assert (out / "best").read_bytes() == best and not (out / "run.lock").exists()

    # --resume with other settings says what differs (in this process: no need for another start-up).
    assert main(["train", *TINY, "--out", str(out), "--resume", "--lr", "0.5"]) == 2
    assert (out / "best").read_bytes() == best


def test_a_full_disk_is_a_message_with_the_path_and_the_fix(tmp_path, monkeypatch, capsys):
    def no_space(obj, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(torch, "save", no_space)
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"could not write {out / 'best'}: No space left on device" in err
    assert "fix: free some disk space" in err and "Traceback" not in err
    left = [p.name for p in out.iterdir()] if out.exists() else []
    assert not any(name.endswith(".tmp") for name in left) and "run.lock" not in left    # nothing half-written


def test_resume_with_a_checkpoint_of_another_model_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["train", *TINY, "--out", str(out), "--resume", "--model", "image-only-nano"]) == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "model.config" in err and "Traceback" not in err


def test_internal_errors_exit_1_with_the_traceback_behind_debug(monkeypatch, capsys):
    module = importlib.import_module("poster_lite.complexity")     # (pl.complexity is the function)

    def broken(*args, **kwargs):
        raise KeyError("a bug")
    monkeypatch.setattr(module, "complexity", broken)
    assert main(["complexity", "--model", "poster-nano"]) == 1
    err = capsys.readouterr().err
    assert "internal error KeyError" in err and "--debug" in err and "Traceback" not in err
    assert main(["complexity", "--model", "poster-nano", "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_complexity_builds_the_model_at_the_input_size(capsys):
    assert main(["complexity", "--model", "poster-nano", "--input-size", "160", "--json"]) == 0
    at_160 = json.loads(capsys.readouterr().out)
    assert main(["complexity", "--model", "poster-nano", "--json"]) == 0
    default = json.loads(capsys.readouterr().out)
    assert at_160["input_size"] == 160 and default["input_size"] == 112
    assert at_160["params"] == default["params"]      # the size changes the input, not the weights
