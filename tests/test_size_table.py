"""The supplement's Tables 3 and 4: parameter counts exactly, FLOPs within 3%."""
import pytest

import poster_lite as pl

PAPER = {"poster-t": (52_229_135, 19.71, 13.6), "poster-s": (62_039_767, 29.52, 14.7),
         "poster-l": (71_850_399, 39.33, 15.7)}


@pytest.fixture(scope="module")
def table():
    return pl.size_table(show=True)


@pytest.mark.parametrize("name", list(PAPER))
def test_poster_sizes(table, name):
    params, transformer_m, gflops = PAPER[name]
    row = table.loc[name]
    assert row[("", "exact params")] == params
    assert row[("transformer params (M)", "ours")] == pytest.approx(transformer_m, abs=0.005)
    assert row[("FLOPs (G)", "ours")] == pytest.approx(gflops, rel=0.03)


def test_image_only_within_1m_of_paper(table):
    assert abs(table.loc["image-only"][("params (M)", "ours")] - 50.8) < 1.0


def test_complexity_breakdown_adds_up():
    c = pl.complexity(pl.build_model("poster-t"))
    assert sum(p["params"] for p in c["parts"].values()) == c["params"]
    assert sum(p["flops"] for p in c["parts"].values()) == c["flops"]
    # The frozen landmark net counts as parameters but is not trainable.
    assert c["params"] - c["trainable_params"] == c["parts"]["landmark_backbone"]["params"]
    assert c["parts"]["transformer"]["params"] == 19_708_600


def test_complexity_cli(capsys):
    from poster_lite.cli import main
    assert main(["complexity", "--model", "poster-nano"]) == 0
    assert "parameters" in capsys.readouterr().out
    assert main(["complexity", "--model", "poster-xl"]) == 2
    assert "known presets" in capsys.readouterr().err
