"""The official backbone files: ir50.pth (with stage 4) and the MobileFaceNet checkpoint."""
import torch

import poster_lite as pl
from poster_lite.models import IRBackbone
from poster_lite.models.official import to_release_state_dict


def _full_ir50(cfg):
    return IRBackbone(cfg.ir_stem, cfg.ir_widths, cfg.ir_units, embedding_size=cfg.ir_embedding_size,
                      stage4_width=cfg.ir_stage4_width, stage4_units=cfg.ir_stage4_units)


def test_ir50_file_loads_and_reports_stage4(tmp_path, nano, capsys):
    torch.manual_seed(1)
    full = _full_ir50(nano.config)
    path = tmp_path / "ir50.pth"
    torch.save(to_release_state_dict(full), path)
    report = pl.load_official_weights(nano, path)
    assert report["kind"] == "ir50"
    assert report["unused"] and all(k.startswith("body.3.") for k in report["unused"])  # nano: 1+1+1 units
    assert "no place in POSTER" in capsys.readouterr().out
    torch.testing.assert_close(nano.image_backbone.stages[2].units[0].conv2.weight,
                               full.stages[2].units[0].conv2.weight)
    torch.testing.assert_close(nano.image_backbone.embedding_head.linear.weight,
                               full.embedding_head.linear.weight)
    # The full IR-50 itself takes its own file without leftovers.
    again = _full_ir50(nano.config)
    assert pl.load_official_weights(again, path)["unused"] == []


def test_paper_ir50_layout_names():
    cfg = pl.make_config("poster-l")
    keys = to_release_state_dict(_full_ir50(cfg))
    assert "body.23.res_layer.4.running_var" in keys            # 3 + 4 + 14 + 3 = 24 units
    assert "body.21.shortcut_layer.0.weight" in keys            # stage 4 widens 256 -> 512
    assert keys["output_layer.3.weight"].shape == (512, 512 * 7 * 7)


def test_mobilefacenet_file(tmp_path, nano):
    torch.manual_seed(2)
    other = pl.build_model("poster-nano")
    sd = {"module." + k: v for k, v in to_release_state_dict(other.landmark_backbone).items()}
    path = tmp_path / "mobilefacenet_model_best.pth.tar"
    torch.save({"state_dict": sd, "epoch": 3}, path)
    assert pl.load_official_weights(nano, path)["kind"] == "mobilefacenet"
    for a, b in zip(nano.landmark_backbone.state_dict().values(), other.landmark_backbone.state_dict().values()):
        torch.testing.assert_close(a, b)
    assert not any(p.requires_grad for p in nano.landmark_backbone.parameters())  # still frozen


def test_poster_round_trip_through_release_layout(nano):
    sd = to_release_state_dict(nano)
    assert "face_landback.conv_6_sep.prelu.weight" in sd and "ir_layer.weight" in sd
    torch.manual_seed(5)
    fresh = pl.build_model("poster-nano")
    pl.load_official_weights(fresh, sd)
    x = torch.randn(2, 3, 112, 112)
    torch.testing.assert_close(fresh.eval()(x), nano.eval()(x))
