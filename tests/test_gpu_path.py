"""The GPU path, tested on a CPU: the precision rule with the capability queries mocked, the
DataLoader settings a CUDA device gets, channels-last and torch.compile in training, the
refusal of a random frozen landmark backbone (and its opt-out), the input-bound verdict, and
SynthFER at 224 px drawn by several processes."""
import importlib
import json

import pytest
import torch

import poster_lite as pl
from poster_lite import device as dev
from poster_lite.bench import input_verdict
from poster_lite.checkpoint import load_checkpoint
from poster_lite.cli import main
from poster_lite.config import make_config
from poster_lite.errors import UserError
from poster_lite.models.official import to_release_state_dict
from poster_lite.pretrain import LANDMARK_FILE, load_pretrained_backbones
from poster_lite.training import train
from poster_lite.training.landmarks import needs_pretrained_landmarks, refusal
from poster_lite.training.loop import train_one_epoch
from poster_lite.training.recipe import Recipe

CUDA = torch.device("cuda", 0)


# ---- precision per GPU ----------------------------------------------------------------------
@pytest.fixture
def gpu(monkeypatch):
    """A fake GPU: gpu(capability, native_bf16) sets what torch.cuda's queries answer."""
    def set_gpu(capability, native_bf16):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: capability)
        # Like torch: with emulation counted (the default) every recent GPU says yes.
        monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                            lambda including_emulation=True: True if including_emulation else native_bf16)
    return set_gpu


@pytest.mark.parametrize("name, capability, native, expected", [
    ("T4", (7, 5), False, "fp16"), ("V100", (7, 0), False, "fp16"),
    ("A100", (8, 0), True, "bf16"), ("H100", (9, 0), True, "bf16"),
    ("Ampere that reports no native bf16", (8, 6), False, "fp16"),
])
def test_auto_precision_follows_native_bf16(gpu, monkeypatch, name, capability, native, expected):
    monkeypatch.delenv("POSTER_LITE_PRECISION", raising=False)
    gpu(capability, native)
    assert dev.resolve_precision("auto", CUDA) == expected, name
    assert dev.resolve_precision("fp32", CUDA) == "fp32"          # an explicit choice is kept
    # fast() resolves with the same function, so it follows the same rule.
    fast_module = importlib.import_module("poster_lite.fast")       # (pl.fast is the function)
    assert fast_module.resolve_precision is dev.resolve_precision


def test_fp16_training_gets_a_gradient_scaler(monkeypatch, one_thread):
    """pl.train pairs fp16 with a GradScaler (checked on the CPU: the scaler wraps the step)."""
    made = []
    real = torch.amp.GradScaler

    def spy(device_type, *a, **kw):
        made.append(device_type)
        return real(device_type, *a, **kw)
    monkeypatch.setattr(torch.amp, "GradScaler", spy)
    data = torch.utils.data.TensorDataset(torch.randn(8, 3, 8, 8), torch.arange(8) % 2)
    train(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 2)), data, data, epochs=1, batch_size=4,
          precision="fp16", progress=False, sam=False, lr=1e-3)
    assert made == ["cpu"]


# ---- feeding the GPU --------------------------------------------------------------------------
def test_loader_options_on_a_gpu_and_on_a_cpu():
    assert dev.loader_options(CUDA, cpus=16) == {"num_workers": 8, "pin_memory": True, "persistent_workers": True,
                                                 "prefetch_factor": 4}
    assert dev.loader_options(CUDA, cpus=16, processes=4)["num_workers"] == 3      # 4 GPUs share 16 cores
    assert dev.loader_options(CUDA, cpus=2)["num_workers"] == 1                     # Colab: 2 cores
    assert dev.loader_options(CUDA, num_workers=0, cpus=16) == {"num_workers": 0, "pin_memory": True}
    assert dev.loader_options("cpu", cpus=16) == {"num_workers": 0, "pin_memory": False}
    assert dev.loader_options("cpu", num_workers=2)["persistent_workers"] is True
    assert 1 <= dev.usable_cpus()


def test_the_training_loader_on_a_mocked_cuda_device(monkeypatch):
    from poster_lite.training import _make_loader

    monkeypatch.setattr(dev, "usable_cpus", lambda: 12)
    data = torch.utils.data.TensorDataset(torch.zeros(16, 3, 4, 4), torch.zeros(16, dtype=torch.long))
    loader = _make_loader(data, 8, 1, 0, Recipe(), CUDA)                 # built, never iterated
    assert (loader.num_workers, loader.pin_memory, loader.persistent_workers, loader.prefetch_factor) == \
        (8, True, True, 4)
    assert _make_loader(data, 8, 2, 0, Recipe(), CUDA).num_workers == 5    # two processes: 6 cores each
    assert _make_loader(data, 8, 1, 0, Recipe(num_workers=2), CUDA).num_workers == 2
    assert _make_loader(data, 8, 1, 0, Recipe(), torch.device("cpu")).num_workers == 0
    with pytest.raises(UserError, match="num_workers must be a whole number >= 0"):
        Recipe(num_workers=-1)


def test_channels_last_images_reach_the_network():
    seen = []
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten(), torch.nn.LazyLinear(2))
    net.register_forward_pre_hook(lambda m, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(4, 3, 8, 8),
                                                                        torch.tensor([0, 1, 0, 1])), batch_size=2)
    net(torch.randn(1, 3, 8, 8))
    seen.clear()

    class Bar:
        def update(self, n): pass
        def set_postfix(self, **kw): pass
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    for channels_last in (True, False):
        train_one_epoch(net, loader, torch.nn.functional.cross_entropy, optimizer, None, None, "cpu", "fp32", Bar(),
                        channels_last=channels_last)
    assert seen == [True, True, False, False]


def test_compile_is_a_switch_of_train(monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda module, **kw: compiled.append(module) or module)
    data = torch.utils.data.TensorDataset(torch.randn(8, 3, 8, 8), torch.arange(8) % 2)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 2))
    train(model, data, data, epochs=1, batch_size=4, precision="fp32", progress=False, sam=False, compile=True)
    assert compiled == [model]
    train(model, data, data, epochs=1, batch_size=4, precision="fp32", progress=False, sam=False)
    assert len(compiled) == 1


def test_train_runs_through_a_real_compiled_module(monkeypatch):
    """A real torch.compile wrapper (dynamo with its eager backend: no code generation, seconds),
    with SAM, through pl.train's whole loop: the wrapper refuses len() and bool(), which the loop
    once asked of it."""
    real_compile = torch.compile
    wrappers = []
    monkeypatch.setattr(torch, "compile", lambda module, **kw: wrappers.append(real_compile(module, backend="eager"))
                        or wrappers[-1])
    class Classifier(torch.nn.Module):        # like PosterModel, no __len__ (nn.Sequential has one)
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(192, 2)

        def forward(self, x):
            return self.linear(x.flatten(1))

    data = torch.utils.data.TensorDataset(torch.randn(8, 3, 8, 8), torch.arange(8) % 2)
    model = Classifier()
    history = train(model, data, data, epochs=2, batch_size=4, precision="fp32", progress=False, sam=True,
                    compile=True)
    assert len(wrappers) == 1 and type(wrappers[0]).__name__ == "OptimizedModule"
    assert len(history) == 2 and all(torch.isfinite(torch.tensor(history["train_loss"].tolist())))


@pytest.mark.parametrize("decode, workers, step, verdict", [
    (300.0, 8, 1500.0, "compute-bound"),      # 2,400 img/s fed, a 1,500 img/s GPU step
    (300.0, 1, 1500.0, "input-bound"),        # one worker cannot keep up
    (1100.0, 0, 40.0, "compute-bound"),       # a CPU: decoding in the training process, a slow step
    (100.0, 0, 400.0, "input-bound"),
])
def test_input_verdict(decode, workers, step, verdict):
    v = input_verdict(decode, workers, step)
    assert v["verdict"] == verdict
    assert v["feed_images_per_s"] == decode * max(1, workers)
    assert v["workers_needed"] == -(-step // decode)
    if workers:
        assert v["loop_images_per_s"] == min(decode * workers, step)
    else:
        assert v["loop_images_per_s"] == pytest.approx(1 / (1 / decode + 1 / step))


# ---- the frozen landmark backbone ----------------------------------------------------------------
class Faces(torch.utils.data.Dataset):
    classes = ["a", "b", "c"]

    def __init__(self, n):
        g = torch.Generator().manual_seed(n)
        self.images, self.targets = torch.randn(n, 3, 112, 112, generator=g), (torch.arange(n) % 3).tolist()

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.images[i], self.targets[i]


def tiny(model, **kw):
    return train(model, Faces(8), Faces(4), epochs=1, batch_size=4, precision="fp32", progress=False, sam=False,
                 lr=1e-3, **kw)


def test_a_random_frozen_landmark_backbone_is_refused_with_the_ways_out(tmp_path, one_thread):
    torch.manual_seed(0)
    model = pl.build_model("poster-nano", num_classes=3)
    assert needs_pretrained_landmarks(model)
    with pytest.raises(UserError) as refused:
        tiny(model, out_dir=tmp_path / "run")
    message = str(refused.value)
    assert "poster-lite pretrain-backbones --model poster-nano" in message
    assert "load_pretrained_backbones(model)" in message and "allow_random_landmarks=True" in message
    assert not (tmp_path / "run").exists()                             # refused before anything was written
    history = tiny(model, out_dir=tmp_path / "random", allow_random_landmarks=True)      # "I know"
    assert len(history) == 1
    again = load_checkpoint(tmp_path / "random" / "best")
    assert again.meta["landmark_backbone"] == "random" and needs_pretrained_landmarks(again)


def test_loaded_landmarks_train_and_stay_marked_through_checkpoints(tmp_path, one_thread):
    torch.manual_seed(0)
    donor = pl.build_model("poster-nano", num_classes=3)
    folder = tmp_path / "backbones"
    folder.mkdir()
    torch.save({"state_dict": to_release_state_dict(donor.landmark_backbone)}, folder / LANDMARK_FILE)
    model = pl.build_model("poster-nano", num_classes=3)
    assert load_pretrained_backbones(model, folder) == [str(folder / LANDMARK_FILE)]
    assert not needs_pretrained_landmarks(model)
    tiny(model, out_dir=tmp_path / "run")                                       # no opt-out needed
    best = load_checkpoint(tmp_path / "run" / "best")
    assert best.meta["landmark_backbone"] == str(folder / LANDMARK_FILE) and not needs_pretrained_landmarks(best)
    resumed = pl.build_model("poster-nano", num_classes=3)             # random, until `last` restores it
    history = train(resumed, Faces(8), Faces(4), epochs=2, batch_size=4, precision="fp32", progress=False,
                    sam=False, lr=1e-3, out_dir=tmp_path / "run", resume=True)
    assert len(history) == 2


def test_models_without_a_frozen_landmark_backbone_train_as_before(one_thread):
    torch.manual_seed(0)
    assert not needs_pretrained_landmarks(pl.build_model("image-only-nano", num_classes=3))
    trainable = pl.build_model("poster-nano", num_classes=3)
    trainable.landmark_backbone.requires_grad_(True)                   # unfrozen: random is a start
    assert not needs_pretrained_landmarks(trainable)
    if pl.shipped.has_model("poster-nano"):            # trained from the shipped backbones
        assert not needs_pretrained_landmarks(pl.trained_model("poster-nano", source="shipped"))


def test_the_full_size_refusal_names_the_authors_files_and_where_they_go():
    from poster_lite.official_files import default_dest
    from poster_lite.pretrain import backbone_dir

    message = refusal(make_config("poster-l"))
    assert "poster-lite pretrain-backbones --model poster-t" in message           # poster-t/s/l share theirs
    assert f"poster-lite fetch-official --only ir50.pth {LANDMARK_FILE}" in message
    assert str(default_dest()) in message and str(backbone_dir("poster-t")) in message
    nano = refusal(make_config("poster-nano"), command_line=True)
    assert "fits poster-t/s/l, not poster-nano" in nano and "--backbones none" in nano


def test_the_command_line_refuses_before_touching_the_run_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("POSTER_LITE_DATA", str(tmp_path / "data"))        # no backbones cached there
    out = tmp_path / "run"
    out.mkdir()
    (out / "best").write_text("an earlier run's weights")
    code = main(["train", "--model", "poster-t", "--data", "synthfer-224", "--limit", "8", "--out", str(out),
                 "--overwrite", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "no pretrained landmark backbone for poster-t" in err
    assert "pretrain-backbones --model poster-t" in err and "fetch-official" in err and "--backbones none" in err
    assert (out / "best").read_text() == "an earlier run's weights"
    assert not (tmp_path / "data" / "synthfer-224").exists()               # no data drawn either


# ---- SynthFER at 224 px -------------------------------------------------------------------
def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "synthfer.json"}


def test_synthfer_224_by_name_and_two_processes_draw_the_same_faces(tmp_path, monkeypatch):
    from poster_lite.data import SYNTHFER_SETS, load, synthfer_folder
    from poster_lite.data import synthfer as sf

    monkeypatch.setenv("POSTER_LITE_DATA", str(tmp_path / "data"))
    assert SYNTHFER_SETS["synthfer-224"]["n_train"] == 50000 and SYNTHFER_SETS["synthfer-224"]["size"] == 224
    assert synthfer_folder("synthfer-224") == tmp_path / "data" / "synthfer-224"
    small = dict(n_train=8, n_val=4, n_test=4)
    one = sf.make_synthfer(tmp_path / "one", **small, workers=1, size=224, progress=False)
    monkeypatch.setattr(sf, "_CHUNK", 2)                          # several chunks: two processes share them
    # The command's split sizes differ from synthfer-224's own, so its people count falls back to
    # make_synthfer's (one per 25 images), as for `one`.
    assert main(["synthfer", "--size", "224", "--train", "8", "--val", "4", "--test", "4", "--workers", "2",
                 "--quiet"]) == 0
    two = synthfer_folder("synthfer-224", **small, n_identities=None)
    assert two.parent.name == "variants" and two.parent.parent == tmp_path / "data" / "synthfer-224"
    a, b = _files(one), _files(two)
    assert len([f for f in a if f.endswith(".jpg")]) == 16 and a.keys() == b.keys()
    assert all(a[k] == b[k] for k in a), "the faces depend on their index only, not on the processes"
    before = (two / "synthfer.json").stat().st_mtime_ns
    test = load("synthfer-224", "test", **small, n_identities=None, progress=False)  # what the command wrote
    assert len(test) == 4 and test[0][0].size == (224, 224)
    assert (two / "synthfer.json").stat().st_mtime_ns == before


def test_poster_t_trains_on_synthfer_224_in_smoke_form(tmp_path, monkeypatch, one_thread):
    """The GPU command on a CPU with --limit: a few faces of synthfer-224's kind, poster-t at 224 px."""
    monkeypatch.setenv("POSTER_LITE_DATA", str(tmp_path / "data"))
    out = tmp_path / "run"
    assert main(["train", "--model", "poster-t", "--data", "synthfer-224", "--limit", "4", "--batch-size", "2",
                 "--epochs", "1", "--no-sam", "--precision", "fp32", "--backbones", "none", "--out", str(out),
                 "--quiet"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["epochs_trained"] == 1 and results["test"]["accuracy"] is not None
    assert load_checkpoint(out / "best").config.input_size == 224


def test_a_graph_that_cannot_compile_trains_eagerly(monkeypatch):
    """A compiler that fails (here a backend that raises, as inductor does without a C++ compiler)
    costs the speed-up, not the run."""
    def broken_backend(graph, example_inputs):
        raise RuntimeError("no C++ compiler on this machine")

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda module, **kw: real_compile(module, backend=broken_backend))
    data = torch.utils.data.TensorDataset(torch.randn(8, 3, 8, 8), torch.arange(8) % 2)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 2))
    history = train(model, data, data, epochs=1, batch_size=4, precision="fp32", progress=False, sam=True,
                    compile=True)
    torch.manual_seed(0)
    eager = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 2))
    expected = train(eager, data, data, epochs=1, batch_size=4, precision="fp32", progress=False, sam=True)
    assert history["train_loss"].tolist() == pytest.approx(expected["train_loss"].tolist(), rel=1e-5)
