"""Build notebooks/NN_name.ipynb from a plain-text source in tools/notebook_sources/.

Writing a notebook as text keeps its diffs readable. The sources use the "percent"
layout that jupytext also reads:

    # %% [markdown]
    # # A title
    # Markdown lines are written as comments.
    # %% tags=["parameters"]
    SMOKE = 0

A line `# %%` starts a code cell, `# %% [markdown]` a markdown cell; either may carry
`tags=[...]`. The notebooks come out without outputs, with stable cell ids.

    python tools/build_notebooks.py              # every source
    python tools/build_notebooks.py 03_cross_fusion

The .ipynb is what users open and what the tests check; after editing a notebook in
Jupyter, carry the change back into its source (or delete the source).
"""
from __future__ import annotations

import ast
import pathlib
import re
import sys

import nbformat

REPO = pathlib.Path(__file__).resolve().parents[1]
SOURCES = REPO / "tools" / "notebook_sources"
MARKER = re.compile(r"^# %%(?P<markdown> \[markdown\])?(?:\s+tags=(?P<tags>\[.*\]))?\s*$")


def parse(text: str) -> list[nbformat.NotebookNode]:
    cells, kind, tags, lines = [], None, [], []

    def close():
        if kind is None:
            return
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(re.sub(r"^# ?", "", line) for line in body.splitlines())
            cell = nbformat.v4.new_markdown_cell(body)
        else:
            cell = nbformat.v4.new_code_cell(body)
        if tags:
            cell.metadata["tags"] = tags
        cells.append(cell)

    for number, line in enumerate(text.splitlines(), 1):
        match = MARKER.match(line)
        if match:
            close()
            kind = "markdown" if match["markdown"] else "code"
            tags = ast.literal_eval(match["tags"]) if match["tags"] else []
            lines = []
        elif kind is None:
            if line.strip():
                raise ValueError(f"line {number}: text before the first '# %%' marker")
        else:
            lines.append(line)
    close()
    return cells


def build(source: pathlib.Path) -> pathlib.Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = parse(source.read_text(encoding="utf-8"))
    for i, cell in enumerate(nb.cells):
        cell.id = f"{source.stem[:2]}-{i:03d}"
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    nbformat.validate(nb)
    target = REPO / "notebooks" / f"{source.stem}.ipynb"
    target.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")
    return target


def main(argv=None) -> int:
    names = (argv if argv is not None else sys.argv[1:])
    sources = [SOURCES / f"{n.removesuffix('.py')}.py" for n in names] or sorted(SOURCES.glob("*.py"))
    for source in sources:
        if not source.exists():
            print(f"no source {source}", file=sys.stderr)
            return 2
        print(f"{source.relative_to(REPO)} -> {build(source).relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
