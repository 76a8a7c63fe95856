"""Clear outputs and execution counts from notebooks, so that they are committed clean.

    python tools/strip_outputs.py                 # every notebooks/*.ipynb, in place
    python tools/strip_outputs.py a.ipynb b.ipynb
    python tools/strip_outputs.py --check         # exit 1 (and name them) if any has outputs

Besides outputs and counts it drops the per-run metadata that Jupyter, papermill and
ipywidgets add (timings, kernel state), which would otherwise make every run a diff.
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import nbformat

REPO = pathlib.Path(__file__).resolve().parents[1]
RUN_METADATA = ("execution", "papermill", "collapsed", "scrolled", "ExecuteTime")
NOTEBOOK_RUN_METADATA = ("papermill", "widgets")


def strip(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The same notebook without outputs, execution counts or run metadata (in place)."""
    for cell in nb.cells:
        for key in RUN_METADATA:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    for key in NOTEBOOK_RUN_METADATA:
        nb.metadata.pop(key, None)
    return nb


def dirty_cells(nb: nbformat.NotebookNode) -> list[int]:
    """Indices of code cells that carry outputs or an execution count."""
    return [i for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=pathlib.Path)
    parser.add_argument("--check", action="store_true", help="report dirty notebooks, change nothing")
    args = parser.parse_args(argv)
    paths = args.paths or sorted((REPO / "notebooks").glob("*.ipynb"))
    dirty = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        if args.check:
            if dirty_cells(nb):
                dirty.append(path)
            continue
        before = nbformat.writes(nb)
        after = nbformat.writes(strip(nb))
        if after != before:
            path.write_text(after + "\n" if not after.endswith("\n") else after, encoding="utf-8")
            print(f"stripped {path}")
    if dirty:
        print("notebooks with outputs (run `python tools/strip_outputs.py`):", *dirty, sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
