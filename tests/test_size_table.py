"""The supplement's Tables 3 and 4: parameter counts exactly, FLOPs within 3%."""
import pandas as pd
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


def test_poster_v2_row_both_ways(table):
    """POSTER V2's paper counts thop's way (active parameters, multiply-adds): its row shows those
    beside the paper's 43.7M / 8.4G, and the stored parameters / FLOPs with attention beside them."""
    row = table.loc["poster-v2"]
    assert row[("", "exact params")] == 58_316_594                 # all stored (POSTER_V2_FACTS.md)
    assert row[("", "exact active params")] == 43_724_311          # thop's count, the paper's 43.7M
    assert row[("active params (M)", "paper")] == 43.7 and row[("MACs (G)", "paper")] == 8.4
    assert row[("MACs (G)", "ours")] == pytest.approx(8.482, rel=0.01)       # thop: 8,482,266,176
    assert row[("FLOPs (G)", "ours")] == pytest.approx(17.185, rel=0.01)     # FlopCounterMode: 17,184,997,888
    assert pd.isna(row[("params (M)", "paper")])        # the V2 paper gives no stored-parameter count


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
    assert "known presets" in capsys.readouterr().err.lower()
