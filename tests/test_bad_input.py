"""Clear errors for wrong inputs, unknown names and mismatched checkpoints."""
import pytest
import torch

import poster_lite as pl
from poster_lite.models.official import CheckpointMismatch, to_release_state_dict


def test_wrong_input_size(nano):
    with pytest.raises(ValueError, match=r"built for 112x112 inputs, got 224x224"):
        nano(torch.randn(1, 3, 224, 224))


def test_wrong_channels(nano):
    with pytest.raises(ValueError, match="3 colour channels, got 1"):
        nano(torch.randn(1, 1, 112, 112))
    with pytest.raises(ValueError, match="batch"):
        nano(torch.randn(3, 112, 112))


def test_unknown_preset_lists_known():
    with pytest.raises(ValueError, match="poster-t, poster-s, poster-l"):
        pl.build_model("poster-xxl")


def test_unknown_field():
    with pytest.raises(TypeError, match="swap_dept"):
        pl.build_model("poster-nano", swap_dept=2)


def test_invalid_values():
    with pytest.raises(ValueError, match="swap_depth"):
        pl.build_model("poster-nano", swap_depth=5)
    with pytest.raises(ValueError, match="image_tokens"):
        pl.build_model("poster-nano", image_tokens="patchy")


def test_affectnet_weights_into_rafdb_model():
    affectnet = pl.build_model("poster-t", num_classes=8, mix_tokens=False)
    sd = {"module." + k: v for k, v in to_release_state_dict(affectnet).items()}
    rafdb = pl.build_model("poster-t")
    before = rafdb.head.weight.clone()
    with pytest.raises(CheckpointMismatch) as err:
        pl.load_official_weights(rafdb, {"model_state_dict": sd})
    msg = str(err.value)
    assert "pyramid_fuse.blocks.0.block_l.conv.weight" in msg          # names the keys
    assert "head.linear.weight" in msg and "mix_tokens=False" in msg
    assert torch.equal(rafdb.head.weight, before)                      # nothing half-loaded


def test_file_that_is_not_a_checkpoint(tmp_path, nano):
    bad = tmp_path / "notes.pth"
    bad.write_text("these are not weights")
    with pytest.raises(ValueError, match="notes.pth is not a readable PyTorch checkpoint"):
        pl.load_official_weights(nano, bad)
    tensors = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], tensors)
    with pytest.raises(ValueError, match="not a checkpoint"):
        pl.load_official_weights(nano, tensors)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        pl.load_official_weights(nano, tmp_path / "missing.pth")
    unknown = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(2)}, unknown)
    with pytest.raises(ValueError, match="not a POSTER, IR-50 or MobileFaceNet"):
        pl.load_official_weights(nano, unknown)


def test_hints_name_the_real_difference():
    sd = to_release_state_dict(pl.build_model("poster-nano", depth=3))
    with pytest.raises(CheckpointMismatch) as err:
        pl.load_official_weights(pl.build_model("poster-nano"), sd)
    assert "build it with depth=3" in str(err.value) and "mix_tokens" not in str(err.value)
    sd = to_release_state_dict(pl.build_model("poster-nano", mix_tokens=False))
    with pytest.raises(CheckpointMismatch) as err:
        pl.load_official_weights(pl.build_model("poster-nano"), sd)
    assert "mix_tokens=False" in str(err.value) and "depth=" not in str(err.value)
