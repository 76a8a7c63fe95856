"""The HTML pages of `make tour` / `make book` show each explorer's picture, not an empty widget box."""
import base64
import html
import pathlib
import re
import sys

import nbformat
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import tour  # noqa: E402

MARKER = "face_designer_cell"


@pytest.mark.slow
def test_executed_notebook_html_shows_the_explorers_png(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("SMOKE = 0", metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(f"# {MARKER}\nfrom poster_lite.widgets import face_designer\n"
                                          "designer = face_designer()\ndesigner"),
                nbformat.v4.new_code_cell("# next_cell_marker")]
    source = tmp_path / "explorer.ipynb"
    nbformat.write(nb, source)
    row = tour.execute(source, tmp_path / "out", {"SMOKE": 1}, cell_timeout=300)
    assert row["status"] == "ok", row
    executed = nbformat.read(tmp_path / "out" / "explorer.ipynb", as_version=4)
    # papermill kept the live widget and its state: what made the page show an empty box.
    assert "widgets" in executed.metadata
    cell = next(c for c in executed.cells if MARKER in c.source)
    png = next(o["data"]["image/png"] for o in cell.outputs if "image/png" in o.get("data", {}))
    assert any(tour.WIDGET_VIEW in o.get("data", {}) for o in cell.outputs)

    page = (tmp_path / "out" / "explorer.html").read_text(encoding="utf-8")
    start = page.index(html.escape(MARKER)) if html.escape(MARKER) in page else page.index(MARKER)
    end = page.index("next_cell_marker", start)
    explorer_cell = page[start:end]
    images = re.findall(r'<img[^>]*\ssrc="data:image/png;base64,([^"]+)"', explorer_cell)
    assert images, "the explorer's cell shows no picture"
    assert base64.b64decode(images[0]) == base64.b64decode(png), "the picture is not the explorer's PNG"
    assert "widget-view+json" not in page, "the page still carries a live widget it cannot run"
    # The source notebook is untouched: the static copy is made for the page only.
    assert "widgets" in nbformat.read(tmp_path / "out" / "explorer.ipynb", as_version=4).metadata
