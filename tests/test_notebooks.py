"""The notebook suite: committed clean, in step with its sources, built to one pattern, and every
notebook runs in SMOKE mode.

Each notebooks/NN_name.ipynb is a jupytext pair of tools/notebook_sources/NN_name.py (jupytext.toml);
`make notebooks` syncs the pairs and strips outputs with nbstripout. Execution goes through
tools/tour.py (papermill, parameters injected, cwd = notebooks/), one test per notebook so that a
failure names it.
"""
import argparse
import ast
import hashlib
import html
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import jupytext
import nbformat
import pytest
from jupytext.config import load_jupytext_config

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import book  # noqa: E402
import tour  # noqa: E402

NOTEBOOKS = tour.find_notebooks()
IDS = [p.stem for p in NOTEBOOKS]
SOURCE_DIR = REPO / "tools" / "notebook_sources"
SOURCES = sorted(SOURCE_DIR.glob("[0-9][0-9]_*.py"))
SYNC_HINT = "run `make notebooks` (it carries the newer side of each pair to the other)"
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


def dirty_cells(nb):
    """Indices of code cells that carry outputs or an execution count."""
    return [i for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_without_outputs(path):
    nb = read(path)
    nbformat.validate(nb)
    dirty = dirty_cells(nb)
    assert not dirty, f"{path.name}: cells {dirty} carry outputs or execution counts; run `make notebooks`"


def _run_metadata_keys():
    """The run metadata `make notebooks` strips, read from the Makefile so both check the same keys."""
    found = re.search(r"^RUN_METADATA := (.+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert found, "the Makefile no longer defines RUN_METADATA"
    return found[1].strip()


def _nbstripout_verify(paths):
    return subprocess.run([sys.executable, "-m", "nbstripout", "--verify", "--keep-id",
                           "--extra-keys", _run_metadata_keys(), *map(str, paths)],
                          capture_output=True, text=True)


def test_committed_notebooks_pass_nbstripout_verify(tmp_path):
    done = _nbstripout_verify(NOTEBOOKS)
    assert done.returncode == 0, f"notebooks with outputs or run metadata; {SYNC_HINT}:\n{done.stdout}{done.stderr}"
    # The same check fails on a notebook fresh from a run.
    dirty = tmp_path / "99_run.ipynb"
    nbformat.write(_notebook_with_outputs(), dirty)
    assert _nbstripout_verify([dirty]).returncode == 1


def _cells_as_compared(nb):
    return [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in nb.cells]


def test_every_notebook_has_a_source_and_every_source_a_notebook():
    assert [p.stem for p in SOURCES] == IDS, f"unpaired notebooks or sources; {SYNC_HINT}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_matches_its_source(path):
    source = SOURCE_DIR / f"{path.stem}.py"
    assert source.exists(), f"{path.name} has no source {source.relative_to(REPO)}; {SYNC_HINT}"
    want = _cells_as_compared(jupytext.read(source, fmt="py:percent"))
    have = _cells_as_compared(read(path))
    for i, (w, h) in enumerate(zip(want, have)):
        field = next((name for name, a, b in zip(("type", "source", "tags"), w, h) if a != b), None)
        assert field is None, f"{path.name} cell {i} and {source.name} disagree on its {field}; {SYNC_HINT}"
    assert len(want) == len(have), f"{source.name} has {len(want)} cells, {path.name} {len(have)}; {SYNC_HINT}"
    # Written back as a source, the notebook gives its source byte for byte (blank lines included), so a
    # sync in either direction changes nothing: the newer side wins, and a fresh clone's file times are arbitrary.
    written_back = jupytext.writes(read(path), fmt="py:percent", config=load_jupytext_config(str(path)))
    assert written_back == source.read_text(encoding="utf-8"), f"{path.name} does not give back {source.name}; {SYNC_HINT}"


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


def test_05_retrain_trains_here_and_reads_its_own_run(tmp_path):
    """05 draws the shipped run's recorded curves by default (its SMOKE run above); RETRAIN=True trains the
    nano model here instead (SMOKE: a few steps) and reads that run's own files."""
    path = next(p for p in NOTEBOOKS if p.name.startswith("05_"))
    row = tour.execute(path, tmp_path, {"SMOKE": 1, "RETRAIN": True}, cell_timeout=CELL_TIMEOUT_S, html=False)
    assert row["status"] == "ok", f"{path.name} failed with RETRAIN: {row['error']} (executed copy: {tmp_path})"
    assert "trained here" in row["headline"], row["headline"]


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


def _pairs_copy(root):
    """A copy of every notebook pair and jupytext.toml under root: (sources, notebooks) as {name: bytes}."""
    (root / "tools").mkdir()
    shutil.copytree(SOURCE_DIR, root / "tools" / "notebook_sources")
    shutil.copytree(REPO / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns("results"))
    shutil.copy(REPO / "jupytext.toml", root)
    return _pair_bytes(root)


def _pair_bytes(root):
    return ({p.name: p.read_bytes() for p in (root / "tools" / "notebook_sources").glob("*.py")},
            {p.name: p.read_bytes() for p in (root / "notebooks").glob("*.ipynb")})


def _make_the_newer(root, newer):
    """Make the `newer` side of every pair (a glob under root) the more recent, as an edit would."""
    later = max(p.stat().st_mtime for p in root.rglob("*.*")) + 10
    for path in root.glob(newer):
        os.utime(path, (later, later))


def _make_notebooks(root):
    """`make notebooks` run in root, with this environment's jupytext and nbstripout."""
    venv = pathlib.Path(sys.prefix)
    done = subprocess.run(["make", "-s", "-C", str(root), "-f", str(REPO / "Makefile"), f"VENV={venv}",
                           "-o", f"{venv}/.installed", "notebooks"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_make_notebooks_carries_a_source_edit_and_leaves_the_rest_unchanged(tmp_path):
    sources, notebooks = _pairs_copy(tmp_path)
    edited = SOURCES[0]
    _make_the_newer(tmp_path, "tools/notebook_sources/*.py")
    with open(tmp_path / "tools" / "notebook_sources" / edited.name, "a", encoding="utf-8") as f:
        f.write('\n# %% tags=["check"]\nprint("added in the source")\n')
    before = nbformat.reads(notebooks[f"{edited.stem}.ipynb"].decode(), as_version=4)

    _make_notebooks(tmp_path)

    sources_after, notebooks_after = _pair_bytes(tmp_path)
    assert sources_after == sources | {edited.name: sources_after[edited.name]}, "a source was rewritten"
    unchanged = {name: data for name, data in notebooks.items() if name != f"{edited.stem}.ipynb"}
    assert {n: notebooks_after[n] for n in unchanged} == unchanged, "re-syncing unchanged sources changed notebooks"
    after = nbformat.reads(notebooks_after[f"{edited.stem}.ipynb"].decode(), as_version=4)
    assert after.cells[:-1] == before.cells, "the cells before the new one changed (ids included)"
    assert _cells_as_compared(after)[-1] == ("code", 'print("added in the source")', ["check"])


def test_make_notebooks_carries_a_jupyter_edit_back_and_strips_the_run(tmp_path):
    sources, notebooks = _pairs_copy(tmp_path)
    edited = NOTEBOOKS[0]
    target = tmp_path / "notebooks" / edited.name
    nb = read(target)
    code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", []))
    nb.cells[code].source += "\nprint('edited in Jupyter')"
    nb.cells[code].outputs = [nbformat.v4.new_output("stream", name="stdout", text="x\n")]
    nb.cells[code].execution_count = 3
    nb.cells[code].metadata["execution"] = {"iopub.status.busy": "2024"}
    nb.metadata["papermill"] = {"duration": 1.0}
    nb.metadata["widgets"] = {"state": {}}
    nb.metadata["jupytext"] = {"cell_metadata_filter": "tags,-all"}
    note = nbformat.v4.new_markdown_cell("A note written in Jupyter.", metadata={"tags": ["aside"]})
    solution = nbformat.v4.new_code_cell("def added():\n    return 1", metadata={"tags": ["solution"]})
    nb.cells[code + 1:code + 1] = [note, solution]
    nbformat.write(nb, target)
    _make_the_newer(tmp_path, "notebooks/*.ipynb")
    assert dirty_cells(read(target)) == [code]

    _make_notebooks(tmp_path)

    sources_after, notebooks_after = _pair_bytes(tmp_path)
    unchanged = {name: data for name, data in sources.items() if name != f"{edited.stem}.py"}
    assert {n: sources_after[n] for n in unchanged} == unchanged, "re-syncing unchanged notebooks changed sources"
    assert {n: notebooks_after[n] for n in notebooks if n != edited.name} == \
        {n: d for n, d in notebooks.items() if n != edited.name}
    stripped = read(target)
    assert dirty_cells(stripped) == []
    assert "execution" not in stripped.cells[code].metadata
    assert not {"papermill", "widgets", "jupytext"} & set(stripped.metadata)
    assert stripped.cells[code].source.endswith("print('edited in Jupyter')")
    assert [c.id for c in stripped.cells] == [c.id for c in nb.cells], "cell ids changed"
    source = jupytext.read(tmp_path / "tools" / "notebook_sources" / f"{edited.stem}.py", fmt="py:percent")
    assert _cells_as_compared(source) == _cells_as_compared(stripped)
    assert _cells_as_compared(source)[code + 1] == ("markdown", "A note written in Jupyter.", ["aside"])


def test_tour_reads_headline_and_parameters_and_formats_a_table():
    assert tour.headline(_notebook_with_outputs()) == "42 faces"
    assert tour.headline(nbformat.v4.new_notebook()) is None
    assert tour.parse_parameter("EPOCHS=3") == ("EPOCHS", 3)
    assert tour.parse_parameter("DATA=raf-db") == ("DATA", "raf-db")
    assert tour.parse_parameter("PRESETS=['poster-t']") == ("PRESETS", ["poster-t"])
    with pytest.raises(argparse.ArgumentTypeError, match="NAME=VALUE"):
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


def test_a_stopped_tour_keeps_the_rows_it_finished(tmp_path, monkeypatch):
    ran = []

    def fake_execute(path, out_dir, parameters, cell_timeout=None, verbose=False):
        if ran:
            raise KeyboardInterrupt               # stopped during the second notebook
        ran.append(path.stem)
        return {"notebook": path.stem, "status": "ok", "minutes": 0.1, "headline": None, "error": None}

    monkeypatch.setattr(tour, "execute", fake_execute)
    with pytest.raises(KeyboardInterrupt):
        tour.main(["--no-prepare", "--out", str(tmp_path / "tour")])
    rows = json.loads((tmp_path / "tour" / "summary.json").read_text())["notebooks"]
    assert [r["notebook"] for r in rows] == ran == [NOTEBOOKS[0].stem] and rows[0]["parameters"] == {"SMOKE": 0}


def test_a_faithful_tour_runs_every_kernel_on_the_faithful_path(tmp_path, monkeypatch):
    """--faithful is the tour's switch off: the kernels inherit POSTER_LITE_FAST=0, and the rows say so."""
    seen = []

    def fake_execute(path, out_dir, parameters, cell_timeout=None, verbose=False):
        seen.append(os.environ.get("POSTER_LITE_FAST"))
        return {"notebook": path.stem, "status": "ok", "minutes": 0.1, "headline": None, "error": None}

    monkeypatch.setattr(tour, "execute", fake_execute)
    monkeypatch.delenv("POSTER_LITE_FAST", raising=False)
    tour.main(["--no-prepare", "--out", str(tmp_path / "fast"), NOTEBOOKS[0].stem[:2]])
    monkeypatch.setenv("POSTER_LITE_FAST", "1")           # restored after the test
    tour.main(["--no-prepare", "--faithful", "--out", str(tmp_path / "faithful"), NOTEBOOKS[0].stem[:2]])
    assert seen == [None, "0"]
    for name, fast in (("fast", True), ("faithful", False)):
        rows = json.loads((tmp_path / name / "summary.json").read_text())["notebooks"]
        assert rows and all(r["fast_path"] is fast for r in rows)


def test_tour_prepare_row_reaches_the_book(tmp_path, monkeypatch):
    import poster_lite as pl
    from poster_lite import pretrain, shipped

    calls = []
    monkeypatch.setenv("POSTER_LITE_DATA", str(tmp_path))            # nothing cached
    monkeypatch.setattr(shipped, "has_model", lambda name: name != "poster-v2-nano")   # as if V2 were not shipped
    report = {"image_backbone": {"identity_accuracy": 0.7}, "landmark_backbone": {"nme": 0.04}}
    monkeypatch.setattr(pretrain, "ensure_pretrained_backbones", lambda name, device=None: calls.append(name) or report)

    class Trained:
        meta = {"metrics": {"test_accuracy": 0.6}}

    monkeypatch.setattr(pl, "trained_model", lambda name, device=None: calls.append(name) or Trained())
    row = tour.prepare("cpu")
    assert calls == ["poster-nano", "poster-nano", "image-only-nano"], "no ablation features, no training"
    assert row["status"] == "ok" and "poster-nano test 60.0%" in row["headline"] and "NME 0.040" in row["headline"]
    assert "poster-v2-nano: not shipped, not cached" in row["headline"]
    monkeypatch.setattr(pl, "trained_model", lambda name, device=None: 1 / 0)
    failed = tour.prepare("cpu")
    assert failed["status"] == "failed" and "ZeroDivisionError" in failed["error"]
    tour_dir = tmp_path / "tour"
    tour_dir.mkdir()
    tour.update_summary(tour_dir / "summary.json", [row])
    index = book.build(tour_dir, tmp_path / "book").read_text()
    assert "Shared caches" in index and "poster-nano test 60.0%" in index
