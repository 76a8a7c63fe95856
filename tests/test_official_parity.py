"""The release, numerically: load the reference weights, match its logits in float64."""
import json
import math
import zlib

import pytest
import torch

import poster_lite as pl


def fill_by_rule(shapes, salt):
    """The seeded fill described in the vectors file's `rule` field."""
    sd = {}
    for name, shape in shapes:
        g = torch.Generator().manual_seed(zlib.crc32((salt + name).encode()))
        if name.endswith("num_batches_tracked"):
            t = torch.tensor(0)
        elif name.endswith("running_mean"):
            t = 0.1 * torch.randn(shape, generator=g)
        elif name.endswith("running_var"):
            t = 0.5 + torch.rand(shape, generator=g)
        elif name in ("pyramid_fuse.cls_token", "pyramid_fuse.pos_embed"):
            t = 0.02 * torch.randn(shape, generator=g)
        elif len(shape) == 1 and name.endswith(".weight"):
            t = 1 + 0.05 * torch.randn(shape, generator=g)
        elif len(shape) == 1 and name.endswith(".bias"):
            t = 0.05 * torch.randn(shape, generator=g)
        else:
            t = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
        sd[name] = t
    return sd


@pytest.fixture(scope="module")
def vectors(shared_dir):
    return json.loads((shared_dir / "reference" / "poster_v1_vectors.json").read_text())


CASES = [(p, n) for n in (7, 8) for p in ("poster-t", "poster-s", "poster-l")]


@pytest.mark.parametrize("preset,num_classes", CASES)
def test_release_parity(vectors, preset, num_classes):
    case = next(c for c in vectors["cases"] if c["preset"] == preset and c["num_classes"] == num_classes)
    model = pl.build_model(preset, num_classes=num_classes, mix_tokens=case["mix_tokens"])
    assert sum(p.numel() for p in model.parameters()) == case["params"]
    sd = fill_by_rule(case["state_dict_shapes"], vectors["salt"])
    # The release's training checkpoint layout: DataParallel's `module.` prefix.
    ckpt = {"iter": 1, "model_state_dict": {"module." + k: v for k, v in sd.items()}}
    report = pl.load_official_weights(model, ckpt)
    assert report["kind"] == "poster" and report["loaded"] == len(sd)
    x = torch.randn(*vectors["input_shape"], generator=torch.Generator().manual_seed(vectors["input_seed"]))
    model.eval().double()
    with torch.no_grad():
        features = model.forward_features(x.double())
        logits = model.head(features)
        assert torch.equal(model(x.double()), logits)
    torch.testing.assert_close(logits, torch.tensor(case["logits"], dtype=torch.float64), rtol=0, atol=1e-6)
    torch.testing.assert_close(features, torch.tensor(case["features"], dtype=torch.float64), rtol=0, atol=1e-6)


def test_bare_state_dict_without_prefix(vectors):
    case = vectors["cases"][0]
    model = pl.build_model(case["preset"], num_classes=case["num_classes"])
    sd = fill_by_rule(case["state_dict_shapes"], vectors["salt"])
    pl.load_official_weights(model, sd)
    torch.testing.assert_close(model.head.weight, sd["head.linear.weight"])
    torch.testing.assert_close(model.fusion.blocks[0].upsample[0].weight,
                               sd["pyramid_fuse.blocks.0.upsample_m.weight"])
