"""Make the student versions of the notebooks: labs/NN_name.ipynb (committed; `make labs`).

Every code cell tagged `solution` becomes a stub: imports stay, each function and
class keeps its signature and docstring, and its body becomes
`raise NotImplementedError("Exercise: ...")`. So the lab still runs top to bottom:
the self-check after an exercise reports "not implemented yet" instead of the
notebook stopping. Outputs are cleared, and the Colab badge opens the student version.
labs/ is committed so that a badge can open it; tests/test_labs_folder.py fails when it
differs from what this script makes of notebooks/ (run `make labs` after editing a notebook).

The convention the notebooks follow (tests/test_labs.py holds them to it): each
`solution` cell defines functions or classes (plus imports), and the next code cell,
tagged `check`, ends with a self-check's verdict, e.g.
`lab_checks.check_attention(attention)`, which is True for the instructor's code and
False for the stub.

    python tools/make_labs.py                  # every notebooks/*.ipynb -> labs/
    python tools/make_labs.py --out some/dir notebooks/03_cross_fusion.ipynb
"""
from __future__ import annotations

import argparse
import ast
import pathlib
import re
import sys

import nbformat
from nbstripout import strip_output

REPO = pathlib.Path(__file__).resolve().parents[1]
BANNER = ("**Student version.** The code cells marked *Exercise* are yours to fill in: "
          "replace each `raise NotImplementedError(...)` with your code, then run the "
          "self-check cell below it.")


def _stub_body(node, name: str) -> list[ast.stmt]:
    body = []
    if ast.get_docstring(node) is not None:
        body.append(node.body[0])
    body.append(ast.parse(f'raise NotImplementedError("Exercise: write {name}")').body[0])
    return body


def _stub_node(node):
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return node
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        node.body = _stub_body(node, f"{node.name}()")
        return node
    if isinstance(node, ast.ClassDef):
        methods = [n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for method in methods:
            method.body = _stub_body(method, f"{node.name}.{method.name}()")
        doc = [node.body[0]] if ast.get_docstring(node) is not None else []
        node.body = doc + methods or [ast.Pass()]
        return node
    return None   # other statements belong to the solution


def stub_source(source: str) -> str:
    """The exercise version of one solution cell's code."""
    tree = ast.parse(source)
    kept = [n for n in (_stub_node(node) for node in tree.body) if n is not None]
    header = "# Exercise: fill in the code below, then run the self-check in the next cell."
    if not any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for n in kept):
        kept.append(ast.parse('raise NotImplementedError("Exercise: write the code of this cell")').body[0])
    return header + "\n" + "\n\n\n".join(ast.unparse(n) for n in kept) + "\n"


# A Colab link into the repository's notebooks/ folder; the student version's badge opens labs/ instead.
COLAB_NOTEBOOKS = re.compile(r"(https://colab\.research\.google\.com/github/[^/\s)]+/[^/\s)]+/blob/[^/\s)]+/)notebooks/")


def make_lab(nb: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, int]:
    """(student version of `nb`, number of stubbed cells). `nb` is changed in place."""
    count = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "solution" in cell.metadata.get("tags", []):
            try:
                cell.source = stub_source(cell.source)
            except SyntaxError as e:
                raise ValueError(f"solution cell {i} is not plain Python ({e.msg}, line {e.lineno}); "
                                 "keep magics and shell commands out of solution cells") from None
            cell.metadata["tags"] = [t for t in cell.metadata["tags"] if t != "solution"] + ["exercise"]
            count += 1
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = COLAB_NOTEBOOKS.sub(r"\1labs/", cell.source)
    if count:
        banner = nbformat.v4.new_markdown_cell(BANNER)
        banner.id = "lab-banner"
        nb.cells.insert(1, banner)
    return strip_output(nb, keep_output=False, keep_count=False, keep_id=True), count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=pathlib.Path)
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "labs")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    args.out.mkdir(parents=True, exist_ok=True)
    for path in paths:
        try:
            lab, count = make_lab(nbformat.read(path, as_version=4))
        except ValueError as e:
            print(f"{path}: {e}", file=sys.stderr)
            return 2
        target = args.out / path.name
        nbformat.write(lab, target)
        print(f"{path.name}: {count} exercise cell(s) -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
