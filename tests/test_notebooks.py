"""The notebook suite: committed clean, built to one pattern, and every notebook runs in SMOKE mode.

Execution goes through tools/tour.py (papermill, parameters injected, cwd = notebooks/),
one test per notebook so that a failure names it.
"""
import ast
import hashlib
import html
import json
import pathlib
import sys

import nbformat
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import book  # noqa: E402
import strip_outputs  # noqa: E402
import tour  # noqa: E402

NOTEBOOKS = tour.find_notebooks()
IDS = [p.stem for p in NOTEBOOKS]
COLAB = "https://colab.research.google.com/github/poster-lite/poster-lite/blob/main/notebooks/"
REQUIRED_PARAMETERS = {"SMOKE", "DEVICE", "DATA"}
CELL_TIMEOUT_S = 180


def read(path):
    return nbformat.read(path, as_version=4)


def tagged(nb, tag):
    return [c for c in nb.cells if tag in c.metadata.get("tags", [])]


def test_the_suite_has_notebooks():
    assert NOTEBOOKS, "no notebooks/NN_name.ipynb found"
    for path in NOTEBOOKS:
        assert " " not in path.name and path.name[:2].isdigit(), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_without_outputs(path):
    nb = read(path)
    nbformat.validate(nb)
    dirty = strip_outputs.dirty_cells(nb)
    assert not dirty, f"{path.name}: cells {dirty} carry outputs or execution counts; run tools/strip_outputs.py"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_opening_title_badge_description_goals(path):
    nb = read(path)
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    lines = first.source.splitlines()
    assert lines[0].startswith("# "), f"{path.name}: the first line should be the '# ' title"
    assert f"{COLAB}{path.name}" in first.source, f"{path.name}: no Colab badge pointing at itself"
    assert any(l.startswith("> ") and len(l) > 20 for l in lines), f"{path.name}: no '> ' one-line description"
    opening = "\n".join(c.source for c in nb.cells[:3] if c.cell_type == "markdown")
    assert "learning goals" in opening.lower(), f"{path.name}: no learning goals near the top"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_parameters_cell(path):
    cells = tagged(read(path), "parameters")
    assert len(cells) == 1, f"{path.name}: expected one cell tagged 'parameters', found {len(cells)}"
    tree = ast.parse(cells[0].source)
    assigned = {t.id: node.value for node in tree.body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}
    missing = REQUIRED_PARAMETERS - set(assigned)
    assert not missing, f"{path.name}: the parameters cell does not define {sorted(missing)}"
    assert set(assigned) - REQUIRED_PARAMETERS, f"{path.name}: the parameters cell has no size knob"
    assert ast.literal_eval(assigned["SMOKE"]) == 0, "the default mode is SMOKE = 0"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_summary_and_exercises(path):
    headings = [line.strip().lower() for c in read(path).cells if c.cell_type == "markdown"
                for line in c.source.splitlines() if line.startswith("#")]
    assert "## summary" in headings, f"{path.name}: no '## Summary' section"
    assert "## exercises" in headings, f"{path.name}: no '## Exercises' section"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_no_magics_or_shell_escapes(path):
    # Plain Python runs in any front end and lets the tools parse every cell.
    for i, cell in enumerate(read(path).cells):
        if cell.cell_type == "code":
            try:
                ast.parse(cell.source)
            except SyntaxError as e:
                pytest.fail(f"{path.name} cell {i} is not plain Python: {e}")


def _top_level_entries():
    return {p.name for p in REPO.iterdir()}


def _notebook_folder_entries():
    return {str(p.relative_to(REPO)) for p in (REPO / "notebooks").rglob("*")
            if ".ipynb_checkpoints" not in p.parts}


@pytest.mark.slow
@pytest.mark.timeout(CELL_TIMEOUT_S + 120)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_runs_top_to_bottom_in_smoke_mode(path, tmp_path):
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    top, folder = _top_level_entries(), _notebook_folder_entries()

    row = tour.execute(path, tmp_path, {"SMOKE": 1}, cell_timeout=CELL_TIMEOUT_S)

    assert row["status"] == "ok", f"{path.name} failed in SMOKE mode: {row['error']} (executed copy: {tmp_path})"
    assert (tmp_path / f"{path.stem}.html").stat().st_size > 10_000
    # Notebooks write only under runs/, data/ and data/cache/, never beside themselves.
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, f"{path.name} was rewritten by its run"
    # A cell that ends with one of poster_lite.viz's figures must show a picture, not "<Figure ...>".
    executed = nbformat.read(tmp_path / path.name, as_version=4)
    as_text = [o["data"]["text/plain"] for c in executed.cells for o in c.get("outputs", [])
               if "text/plain" in o.get("data", {}) and "image/png" not in o["data"]]
    assert not [t for t in as_text if t.startswith("<Figure size")], f"{path.name} printed a figure as text"
    stray_top = _top_level_entries() - top - {"runs", "data"}
    stray_here = _notebook_folder_entries() - folder
    assert not stray_top and not stray_here, f"{path.name} wrote outside runs/ and data/: {sorted(stray_top | stray_here)}"


# ---------------------------------------------------------------------------- the tools
def _notebook_with_outputs():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 99 · A title\n\n> What it teaches, in one line."),
                nbformat.v4.new_code_cell("print('HEADLINE: 42 faces')")]
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="x\nHEADLINE: 42 faces\n")]
    nb.cells[1].execution_count = 3
    nb.cells[1].metadata["execution"] = {"iopub.status.busy": "2024"}
    nb.metadata["papermill"] = {"duration": 1.0}
    return nb


def test_strip_outputs_clears_outputs_counts_and_run_metadata():
    nb = _notebook_with_outputs()
    assert strip_outputs.dirty_cells(nb) == [1]
    strip_outputs.strip(nb)
    assert strip_outputs.dirty_cells(nb) == []
    assert "execution" not in nb.cells[1].metadata and "papermill" not in nb.metadata
    assert nb.cells[1].source == "print('HEADLINE: 42 faces')"


def test_tour_reads_headline_and_parameters_and_formats_a_table():
    assert tour.headline(_notebook_with_outputs()) == "42 faces"
    assert tour.headline(nbformat.v4.new_notebook()) is None
    assert tour.parse_parameter("EPOCHS=3") == ("EPOCHS", 3)
    assert tour.parse_parameter("DATA=raf-db") == ("DATA", "raf-db")
    assert tour.parse_parameter("PRESETS=['poster-t']") == ("PRESETS", ["poster-t"])
    with pytest.raises(Exception):
        tour.parse_parameter("no-equals-sign")
    rows = [{"notebook": "03_x", "status": "ok", "minutes": 1.25, "headline": "match to 6e-07", "error": None},
            {"notebook": "04_y", "status": "failed", "minutes": 0.5, "headline": None, "error": "ValueError: bad"}]
    table = tour.format_table(rows)
    assert "match to 6e-07" in table and "ValueError: bad" in table and "1/2 ok" in table


def test_tour_summary_merges_runs(tmp_path):
    target = tmp_path / "summary.json"
    tour.update_summary(target, [{"notebook": "04_y", "status": "ok"}])
    tour.update_summary(target, [{"notebook": "03_x", "status": "failed"}, {"notebook": "04_y", "status": "failed"}])
    rows = json.loads(target.read_text())["notebooks"]
    assert [(r["notebook"], r["status"]) for r in rows] == [("03_x", "failed"), ("04_y", "failed")]


def test_book_links_pages_and_describes_every_notebook(tmp_path):
    tour_dir, book_dir = tmp_path / "tour", tmp_path / "book"
    tour_dir.mkdir()
    first = NOTEBOOKS[0].stem
    (tour_dir / f"{first}.html").write_text("<html>page</html>")
    tour.update_summary(tour_dir / "summary.json",
                        [{"notebook": first, "status": "ok", "minutes": 2.0, "headline": "H-L-N", "finished": "now"}])
    index = book.build(tour_dir, book_dir).read_text()
    assert f'href="{first}.html"' in index and (book_dir / f"{first}.html").exists()
    assert "H-L-N" in index
    for path in NOTEBOOKS:
        title, description = book.describe(path)
        assert html.escape(title) in index and description and html.escape(description) in index


def test_tour_prepare_row_reaches_the_book(tmp_path, monkeypatch):
    import poster_lite as pl
    from poster_lite import ablation, pretrain

    calls = []
    report = {"image_backbone": {"identity_accuracy": 0.7}, "landmark_backbone": {"nme": 0.04}}
    monkeypatch.setattr(pretrain, "ensure_pretrained_backbones", lambda name, device=None: calls.append(name) or report)

    class Trained:
        meta = {"metrics": {"test_accuracy": 0.6}}

    monkeypatch.setattr(pl, "trained_model", lambda name, device=None: calls.append(name) or Trained())
    monkeypatch.setattr(ablation, "cached_features", lambda name, device=None: calls.append("features"))
    row = tour.prepare("cpu")
    assert calls == ["poster-nano", "poster-nano", "image-only-nano", "features"]
    assert row["status"] == "ok" and "poster-nano test 60.0%" in row["headline"] and "NME 0.040" in row["headline"]
    monkeypatch.setattr(ablation, "cached_features", lambda name, device=None: 1 / 0)
    failed = tour.prepare("cpu")
    assert failed["status"] == "failed" and "ZeroDivisionError" in failed["error"]
    tour_dir = tmp_path / "tour"
    tour_dir.mkdir()
    tour.update_summary(tour_dir / "summary.json", [row])
    index = book.build(tour_dir, tmp_path / "book").read_text()
    assert "Shared caches" in index and "poster-nano test 60.0%" in index
