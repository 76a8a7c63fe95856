"""POSTER V2: release parity in float64, V1/V2 checkpoint refusals, sizes both ways, the nano
preset's training interface, ablation switches and the two attention paths."""
import json
import math
import zlib

import pytest
import torch

import poster_lite as pl
from poster_lite.config import ALL_PRESETS, config_from_dict
from poster_lite.config_v2 import PosterV2Config
from poster_lite.models import CheckpointMismatch, PosterModel, PosterV2Model, to_release_state_dict
from poster_lite.models.window_attention import relative_position_index, window_partition, window_reverse

FACTS = dict(params_7=58_316_594, params_8=58_317_363, trainable_7=57_309_346, active_7=43_724_311,
             flops_7=17_184_997_888, macs_7=8_482_266_176)


# ---- the release's numbers ------------------------------------------------------------
@pytest.fixture(scope="module")
def vectors(shared_dir):
    path = shared_dir / "reference" / "poster_v2_vectors.json"
    if not path.exists():
        pytest.skip(f"the POSTER V2 reference vectors are absent ({path})")
    return json.loads(path.read_text())


def swin_index(w):
    """The rule's constant index, from the cells' row and column numbers (not the package's code)."""
    cell = torch.arange(w * w)
    row, col = cell // w, cell % w
    return (row[:, None] - row[None, :] + w - 1) * (2 * w - 1) + (col[:, None] - col[None, :] + w - 1)


def fill_by_rule(shapes, salt):
    """The seeded fill described in the vectors file's `rule` field."""
    sd = {}
    for name, shape in shapes:
        g = torch.Generator().manual_seed(zlib.crc32((salt + name).encode()))
        if name.endswith("num_batches_tracked"):
            t = torch.tensor(0)
        elif name.endswith("relative_position_index"):
            t = swin_index(math.isqrt(shape[0]))
        elif name.endswith("running_mean"):
            t = 0.1 * torch.randn(shape, generator=g)
        elif name.endswith("running_var"):
            t = 0.5 + torch.rand(shape, generator=g)
        elif name in ("VIT.cls_token", "VIT.pos_embed"):
            t = 0.02 * torch.randn(shape, generator=g)
        elif len(shape) == 1 and name.endswith(".weight"):
            t = 1 + 0.05 * torch.randn(shape, generator=g)
        elif len(shape) == 1 and name.endswith(".bias"):
            t = 0.05 * torch.randn(shape, generator=g)
        else:
            t = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
        sd[name] = t
    return sd


@pytest.mark.parametrize("num_classes", [7, 8])
def test_release_parity(vectors, num_classes):
    case = next(c for c in vectors["cases"] if c["num_classes"] == num_classes)
    model = pl.build_model("poster-v2", num_classes=num_classes)
    assert isinstance(model, PosterV2Model)
    assert sum(p.numel() for p in model.parameters()) == case["params"]
    # Every key of the release, with its shape, and nothing else.
    ours = {k: list(v.shape) for k, v in to_release_state_dict(model).items()}
    assert ours == {name: shape for name, shape in case["state_dict_shapes"]}
    sd = fill_by_rule(case["state_dict_shapes"], vectors["salt"])
    # The release's training checkpoint layout: DataParallel's `module.` prefix.
    ckpt = {"epoch": 1, "model_state_dict": {"module." + k: v for k, v in sd.items()}}
    report = pl.load_official_weights(model, ckpt)
    assert report["kind"] == "poster-v2" and report["loaded"] == len(sd) == 747
    x = torch.randn(*vectors["input_shape"], generator=torch.Generator().manual_seed(vectors["input_seed"]))
    model.eval().double()
    want_logits = torch.tensor(case["logits"], dtype=torch.float64)
    want_features = torch.tensor(case["features"], dtype=torch.float64)
    with torch.no_grad():
        features = model.forward_features(x.double())
        logits = model.head(features)
    torch.testing.assert_close(logits, want_logits, rtol=0, atol=1e-7)
    torch.testing.assert_close(features, want_features, rtol=0, atol=1e-7)


def test_release_state_dict_forms(vectors):
    """The release's own {'state_dict': ...} with `module.`, and a bare dict without it."""
    case = vectors["cases"][0]
    sd = fill_by_rule(case["state_dict_shapes"], vectors["salt"])
    model = pl.build_model("poster-v2")
    pl.load_official_weights(model, {"state_dict": {"module." + k: v for k, v in sd.items()}, "epoch": 3})
    torch.testing.assert_close(model.cross[0].attn.relative_position_bias_table,
                               sd["attn1.relative_position_bias_table"])
    sd = {k: v + 1 if v.is_floating_point() else v for k, v in sd.items()}
    pl.load_official_weights(model, sd)
    torch.testing.assert_close(model.token_embed[0][1].weight, sd["embed_q.1.weight"])
    torch.testing.assert_close(model.token_embed[2][0].weight, sd["embed_v.proj.weight"])
    torch.testing.assert_close(model.image_backbone.stages[2].units[13].conv2.weight,
                               sd["ir_back.body3.13.res_layer.3.weight"])
    torch.testing.assert_close(model.cross[1].gamma_attn, sd["ffn2.gamma1"])
    torch.testing.assert_close(model.unused.block_convs[1].weight, sd["VIT.blocks.1.conv.weight"])


# ---- refusals and mismatches, named --------------------------------------------------------
def test_v1_checkpoint_refused_by_a_v2_model():
    v1_file = {"model_state_dict": {"module." + k: v
                                    for k, v in to_release_state_dict(pl.build_model("poster-nano")).items()}}
    with pytest.raises(CheckpointMismatch) as e:
        pl.load_official_weights(pl.build_model("poster-v2-nano"), v1_file)
    msg = str(e.value)
    assert "whole POSTER (V1" in msg and "pyramid_fuse." in msg and "model is a POSTER V2" in msg


def test_v2_checkpoint_refused_by_a_v1_model():
    v2_file = to_release_state_dict(pl.build_model("poster-v2-nano"))
    with pytest.raises(CheckpointMismatch) as e:
        pl.load_official_weights(pl.build_model("poster-nano"), v2_file)
    msg = str(e.value)
    assert "whole POSTER V2" in msg and "POSTER (V1) model" in msg and "build_model('poster-v2')" in msg
    with pytest.raises(CheckpointMismatch, match="IRBackbone"):
        pl.load_official_weights(pl.build_model("poster-v2-nano").image_backbone, v2_file)


def test_mismatches_name_keys_and_hints():
    model = pl.build_model("poster-v2-nano")
    eight = to_release_state_dict(pl.build_model("poster-v2-nano", num_classes=8))
    with pytest.raises(CheckpointMismatch) as e:
        pl.load_official_weights(model, eight)
    assert "VIT.head.linear.weight" in str(e.value) and "num_classes=8" in str(e.value)

    sd = to_release_state_dict(pl.build_model("poster-v2-nano"))
    del sd["attn2.relative_position_bias_table"]
    sd["VIT.extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointMismatch) as e:
        pl.load_official_weights(model, sd)
    assert "attn2.relative_position_bias_table" in str(e.value) and "VIT.extra.weight" in str(e.value)

    with_unused = to_release_state_dict(pl.build_model("poster-v2-nano", release_unused_layers=True))
    with pytest.raises(CheckpointMismatch, match="release_unused_layers=True"):
        pl.load_official_weights(model, with_unused)
    single = to_release_state_dict(pl.build_model("poster-v2-nano", scales=(2,)))
    with pytest.raises(CheckpointMismatch, match=r"scales=\(2,\)"):
        pl.load_official_weights(model, single)


def test_round_trip_through_release_names_is_exact():
    torch.manual_seed(1)
    a = pl.build_model("poster-v2-nano", window_sizes=(7, 7, 7)).eval()
    b = pl.build_model("poster-v2-nano", window_sizes=(7, 7, 7)).eval()
    pl.load_official_weights(b, {"model_state_dict": to_release_state_dict(a)})
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


# ---- sizes, both ways ----------------------------------------------------------------------
def test_sizes_both_ways():
    c = pl.complexity(pl.build_model("poster-v2"))
    assert c["params"] == FACTS["params_7"]
    assert c["trainable_params"] == FACTS["trainable_7"]
    assert c["active_params"] == FACTS["active_7"]
    assert c["flops"] == pytest.approx(FACTS["flops_7"], rel=0.01)
    assert c["macs"] == pytest.approx(FACTS["macs_7"], rel=0.01)
    assert sum(p["params"] for p in c["parts"].values()) == c["params"]
    assert sum(p["flops"] for p in c["parts"].values()) == c["flops"]
    # The parts of the facts sheet: never-run ViT layers and the IR-50 head hold no FLOPs.
    assert c["parts"]["unused"] == {"params": 1_619_021, "flops": 0}
    assert c["parts"]["landmark_backbone"]["params"] == 1_007_248
    assert c["parts"]["image_backbone"]["flops"] == pytest.approx(10.936e9, rel=1e-3)
    assert set(c["conventions"]) >= {"params", "flops", "active_params", "macs"}


# ---- the nano preset and the training interface -------------------------------------------
@pytest.fixture
def v2_nano(one_thread):
    torch.manual_seed(0)
    return pl.build_model("poster-v2-nano")


def _forward_backward(model, batch=2):
    size = model.config.input_size
    logits = model(torch.randn(batch, 3, size, size))
    assert logits.shape == (batch, model.config.num_classes)
    logits.sum().backward()
    for p in (model.head.weight, model.vit.pos_embed, model.token_embed[0][0].weight):
        assert p.grad is not None and torch.isfinite(p.grad).all()
    for block in model.cross:
        assert block.attn.relative_position_bias_table.grad.abs().sum() > 0
    return logits


def test_nano_forward_backward_and_frozen_landmarks(v2_nano):
    cfg = v2_nano.config
    assert (cfg.input_size, cfg.num_tokens, cfg.depth) == (112, 148, 2)
    assert all(not p.requires_grad for p in v2_nano.landmark_backbone.parameters())
    assert v2_nano.landmark_conv.weight.requires_grad
    bn = v2_nano.landmark_backbone.stem.bn
    before = bn.running_mean.clone()
    v2_nano.train()
    _forward_backward(v2_nano)
    assert torch.equal(bn.running_mean, before)          # frozen means its statistics too
    assert all(p.grad is None for p in v2_nano.landmark_backbone.parameters())


def test_release_training_mode_of_the_landmark_bn(one_thread):
    model = pl.build_model("poster-v2-nano", freeze_landmark_bn=False).train()
    bn = model.landmark_backbone.stem.bn
    before = bn.running_mean.clone()
    model(torch.randn(2, 3, 112, 112))
    assert not torch.equal(bn.running_mean, before)


def test_nano_sizes():
    c = pl.complexity(pl.build_model("poster-v2-nano"))
    v1 = pl.complexity(pl.build_model("poster-nano"))
    # Same backbones as poster-nano, so they can share pretrained files.
    for part in ("image_backbone", "landmark_backbone"):
        assert c["parts"][part]["params"] == v1["parts"][part]["params"]
    assert c["parts"]["unused"]["params"] == 0
    assert c["params"] < 2_000_000 and c["flops"] < 0.5e9


@pytest.mark.parametrize("scales", [(2,), (1, 2), (0, 2), (0, 1)])
def test_scale_ablation(one_thread, scales):
    model = pl.build_model("poster-v2-nano", scales=scales)
    assert len(model.cross) == len(scales) and model.config.num_tokens == 1 + 49 * len(scales)
    assert (model.landmark_conv is not None) == (2 in scales)
    tokens = model.tokens(torch.randn(1, 3, 112, 112))
    assert tokens.shape == (1, 49 * len(scales), model.config.embed_dim)
    _forward_backward(model)


def test_local_windows(one_thread):
    model = pl.build_model("poster-v2-nano", window_sizes=(7, 7, 7))
    tables = [b.attn.relative_position_bias_table.shape for b in model.cross]
    assert tables == [(169, 2), (169, 4), (169, 8)]
    _, maps = model.eval().forward_with_attention(torch.randn(2, 3, 112, 112))
    assert maps[("window", 0)].shape == (2 * 16, 2, 49, 49)      # 16 windows of 7x7 on the 28x28 map
    _forward_backward(model.train())


def test_config_validation_lists_problems():
    with pytest.raises(ValueError) as e:
        pl.make_config("poster-v2-nano", window_sizes=(5, 14, 7), window_heads=(3, 4, 8), scales=(2, 0))
    msg = str(e.value)
    assert "window_sizes[0]=5" in msg and "window_heads[0]=3" in msg and "scales" in msg
    with pytest.raises(TypeError, match="Unknown PosterV2Config field"):
        pl.make_config("poster-v2", pyramid_dims=(512,))


def test_presets_dispatch_and_config_round_trip():
    assert {"poster-v2", "poster-v2-nano", "poster-l", "poster-nano"} <= set(ALL_PRESETS)
    assert isinstance(pl.make_config("poster-v2"), PosterV2Config)
    assert isinstance(pl.build_model("poster-nano"), PosterModel)
    with pytest.raises(ValueError, match="poster-v2-nano"):
        pl.make_config("poster-v3")
    for name in ("poster-v2", "poster-v2-nano"):
        cfg = pl.make_config(name, num_classes=8, scales=(1, 2))
        d = json.loads(json.dumps(cfg.to_dict()))
        assert d["family"] == "poster-v2" and config_from_dict(d) == cfg
    assert config_from_dict(pl.make_config("poster-nano").to_dict()) == pl.make_config("poster-nano")


def test_fused_and_explicit_attention_agree(one_thread):
    for windows in [(28, 14, 7), (7, 7, 7)]:
        torch.manual_seed(0)
        model = pl.build_model("poster-v2-nano", window_sizes=windows).eval().double()
        for block in model.cross:      # layer scales at 1e-5 would hide the attention
            torch.nn.init.ones_(block.gamma_attn)
            torch.nn.init.normal_(block.attn.relative_position_bias_table)
        x = torch.randn(2, 3, 112, 112, dtype=torch.float64)
        with torch.no_grad():
            fused = model.set_fused_attn(True)(x)
            explicit = model.set_fused_attn(False)(x)
        torch.testing.assert_close(fused, explicit, rtol=0, atol=1e-10)


def test_attention_maps_are_distributions(v2_nano):
    _, maps = v2_nano.eval().forward_with_attention(torch.randn(1, 3, 112, 112))
    assert maps[("window", 0)].shape == (1, 2, 784, 784)
    assert maps[("window", 2)].shape == (1, 8, 49, 49)
    assert maps[("vit", 1)].shape == (1, 4, 148, 148)
    for m in maps.values():
        torch.testing.assert_close(m.sum(-1), torch.ones_like(m.sum(-1)))
    assert all(not m.record for m in v2_nano.attention_modules().values())


def test_window_helpers():
    assert torch.equal(relative_position_index(5), swin_index(5))
    x = torch.randn(2, 14, 14, 3)
    windows = window_partition(x, 7)
    assert windows.shape == (8, 49, 3)
    assert torch.equal(windows[1].reshape(7, 7, 3), x[0, :7, 7:])     # second window: top right
    assert torch.equal(window_reverse(windows, 7, 14, 14), x)


def test_backbone_files_shared_with_poster_nano(one_thread, tmp_path):
    """poster-nano's pretraining files (ir50.pth in both IR-50 layouts, the MobileFaceNet file) load."""
    from poster_lite.pretrain import BACKBONE_FIELDS, build_image_backbone, build_landmark_backbone

    v1, v2 = pl.make_config("poster-nano"), pl.make_config("poster-v2-nano")
    assert all(getattr(v1, f) == getattr(v2, f) for f in BACKBONE_FIELDS)
    torch.manual_seed(3)
    ir, mfn = build_image_backbone("poster-nano"), build_landmark_backbone("poster-nano")
    classic = to_release_state_dict(ir)
    torch.save(classic, tmp_path / "ir50.pth")
    torch.save({"state_dict": to_release_state_dict(mfn)}, tmp_path / "mobilefacenet_model_best.pth.tar")
    model = pl.build_model("poster-v2-nano")
    report = pl.load_official_weights(model, tmp_path / "ir50.pth", verbose=False)
    assert report["kind"] == "ir50" and report["unused"]                    # stage 4 has no place
    assert torch.equal(model.image_backbone.stages[1].units[0].conv1.weight, ir.stages[1].units[0].conv1.weight)
    assert pl.load_official_weights(model, tmp_path / "mobilefacenet_model_best.pth.tar")["kind"] == "mobilefacenet"
    assert torch.equal(model.landmark_backbone.features.conv.weight, mfn.features.conv.weight)
    # The V2 authors' IR-50 layout: body1-3 (one unit each at nano scale), no stage 4.
    renamed = {"body.0.": "body1.0.", "body.1.": "body2.0.", "body.2.": "body3.0."}
    v2_layout = {}
    for k, v in classic.items():
        prefix = next((p for p in renamed if k.startswith(p)), None)
        if prefix is not None:
            v2_layout[renamed[prefix] + k[len(prefix):]] = v
        elif not k.startswith("body."):
            v2_layout[k] = v
    other = pl.build_model("poster-v2-nano")
    pl.load_official_weights(other, v2_layout, verbose=False)
    assert torch.equal(other.image_backbone.stages[2].units[0].conv2.weight, ir.stages[2].units[0].conv2.weight)


def test_checkpoint_save_and_rebuild(v2_nano, tmp_path):
    from poster_lite.checkpoint import read_checkpoint_file, save_checkpoint

    save_checkpoint(v2_nano, tmp_path / "best", {"classes": [str(i) for i in range(7)]})
    saved = read_checkpoint_file(tmp_path / "best")
    rebuilt = pl.build_model(config_from_dict(saved["meta"]["config"]))
    rebuilt.load_state_dict(saved["state_dict"], strict=True)
    x = torch.randn(1, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), v2_nano.eval()(x))


def test_trains_through_the_engine(one_thread):
    from torch.utils.data import TensorDataset

    g = torch.Generator().manual_seed(0)
    images, labels = torch.randn(24, 3, 112, 112, generator=g), torch.randint(0, 3, (24,), generator=g)
    data = TensorDataset(images, labels)
    data.classes = ["a", "b", "c"]
    torch.manual_seed(0)
    model = pl.build_model("poster-v2-nano", num_classes=3)
    history = pl.train(model, data, data, epochs=1, batch_size=8, progress=False, lr=1e-3,
                       allow_random_landmarks=True)
    assert len(history) == 1 and math.isfinite(history["train_loss"].iloc[0])


# ---- through the suite: command line, run folders, checkpoints, the release's files -------
def test_cli_trains_evaluates_and_predicts_a_v2_run(one_thread, tmp_path, capsys):
    """`poster-lite train --model poster-v2-nano` writes a run whose `best` the loader rebuilds as a
    POSTER V2, and `evaluate` / `predict` work on it as on a V1 run."""
    import numpy as np
    from PIL import Image

    from poster_lite.cli import main
    from poster_lite.data import CLASSES
    from poster_lite.data.synthfer import draw_face

    out = tmp_path / "v2"
    assert main(["train", "--model", "poster-v2-nano", "--data", "synthfer", "--epochs", "1", "--batch-size", "8",
                 "--out", str(out), "--limit", "16", "--backbones", "none"]) == 0
    printed = capsys.readouterr()
    assert "training a POSTER V2 (3 scales, a 2-block ViT)" in printed.out + printed.err
    model = pl.load_checkpoint(out / "best")
    assert isinstance(model, PosterV2Model) and model.meta["config"]["family"] == "poster-v2"
    assert model.config == pl.make_config("poster-v2-nano")

    assert main(["evaluate", "--checkpoint", str(out / "best"), "--data", "synthfer", "--split", "test",
                 "--limit", "14", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 14 and report["classes"] == list(CLASSES)
    assert 0 <= report["accuracy"] <= 1

    face, _ = draw_face({"AU6": 1.0, "AU12": 1.0}, size=224)
    Image.fromarray(np.pad(face, ((30, 30), (30, 30), (0, 0)), mode="edge")).save(tmp_path / "face.png")
    assert main(["predict", str(tmp_path / "face.png"), "--checkpoint", str(out / "best")]) == 0
    file, box, label, probability = capsys.readouterr().out.strip().split("  ")
    assert file.endswith("face.png") and label in CLASSES and 0 < float(probability) <= 1


def test_trained_model_cache_takes_v2_names(tmp_path, monkeypatch):
    """pl.trained_model("poster-v2-nano") builds a V2 and caches it apart; the cached run reloads as V2."""
    from poster_lite import model_cache

    monkeypatch.setattr(model_cache, "RUN_SETTINGS",
                        {**model_cache.RUN_SETTINGS, "smoke": dict(epochs=1, batch_size=8, n_train=16, sam=False)})
    monkeypatch.setattr(model_cache, "cache_root", lambda: tmp_path / "cache")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = pl.trained_model("poster-v2-nano", smoke=True, backbones="none", progress=False)
        again = pl.trained_model("poster-v2-nano", smoke=True, backbones="none", progress=False)
    finally:
        torch.set_num_threads(before)
    assert isinstance(model, PosterV2Model) and isinstance(again, PosterV2Model)
    assert [p.name.startswith("poster-v2-nano-smoke") for p in (tmp_path / "cache" / "models").iterdir()] == [True]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_v2_backbones_come_from_poster_nano_folders():
    from poster_lite.pretrain import backbone_dir, backbone_folders

    folders = backbone_folders(pl.make_config("poster-v2-nano"))
    assert backbone_dir("poster-nano") in folders and backbone_dir("poster-v2-nano") in folders
    assert backbone_dir("poster-v2-nano") in backbone_folders(pl.make_config("poster-nano"))


def test_package_exports_v2():
    assert pl.PosterV2Config is PosterV2Config and pl.PosterV2Model is PosterV2Model
    assert pl.ALL_PRESETS is ALL_PRESETS


@pytest.mark.parametrize("num_classes", [7, 8])
def test_a_v2_release_file_loads_through_the_checkpoint_loader(num_classes, tmp_path):
    """A file in the release's layout ({'state_dict': module.-prefixed, 'epoch'}) gives `poster-v2` with the
    file's weights, RGB, RAF-DB's order for 7 classes; for 8 the unsettled order is assumed and said."""
    import warnings

    from poster_lite.checkpoint import AFFECTNET_ORDER, PACKAGE_ORDER, RAF_DB_ORDER
    from poster_lite.models.official_v2 import v2_release_state_dict

    torch.manual_seed(num_classes)
    source = pl.build_model("poster-v2", num_classes=num_classes).eval()
    with torch.no_grad():
        for block in source.cross:
            block.attn.relative_position_bias_table.normal_()
    release = {"module." + k: v for k, v in v2_release_state_dict(source).items()}
    torch.save({"epoch": 3, "state_dict": release}, tmp_path / "rafdb_best.pth")
    del release
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = pl.load_checkpoint(tmp_path / "rafdb_best.pth")
    assert isinstance(model, PosterV2Model) and model.config.num_classes == num_classes
    assert model.meta["channel_order"] == "rgb" and model.meta["source"].endswith("(POSTER V2)")
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        want, got = source(x)[0], model(x)[0]
    if num_classes == 7:
        assert model.meta["classes"] == list(RAF_DB_ORDER) and not caught
        assert torch.equal(got, want)
    else:
        assert model.meta["classes"] == list(PACKAGE_ORDER)
        assert "not settled" in model.meta["label_order"] and any("not settled" in str(w.message) for w in caught)
        # the head's rows were reordered from AffectNet's numbering into the package's order
        assert torch.equal(got, want[[AFFECTNET_ORDER.index(c) for c in PACKAGE_ORDER]])
