"""`make book`: a small static site over the executed notebooks of `make tour`.

    python tools/book.py            # runs/tour/*.html -> runs/book/index.html + pages

The index lists every notebook in order with its title and one-line description (the
first cell's `# title` and `> description` lines), and, where the tour has run it,
a link to its HTML rendering, its status, minutes and headline. Pages are copied,
so runs/book/ can be zipped or served on its own (`python -m http.server -d runs/book`).
"""
from __future__ import annotations

import argparse
import html
import json
import pathlib
import shutil
import sys

import nbformat

import project_home

REPO = pathlib.Path(__file__).resolve().parents[1]

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 62rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
h1 { margin-bottom: .2rem; } .lead { color: #555; margin-top: 0; }
table { border-collapse: collapse; width: 100%; } td, th { padding: .5rem .6rem; vertical-align: top; text-align: left; }
tr { border-bottom: 1px solid #ddd; } th { border-bottom: 2px solid #888; }
.num { color: #888; font-variant-numeric: tabular-nums; } .desc { color: #444; font-size: .95rem; }
.ok { color: #1a7f37; } .failed { color: #c62828; } .none { color: #999; }
.small { font-size: .85rem; color: #666; }
"""


def colab_link(name: str) -> str:
    """The Colab link of notebooks/<name>, from the project's home (pyproject.toml [project.urls])."""
    return project_home.colab_url(f"notebooks/{name}")


def describe(path: pathlib.Path) -> tuple[str, str]:
    """(title, one-line description) from the notebook's first cell."""
    first = nbformat.read(path, as_version=4).cells[0].source.splitlines()
    title = next((l[2:].strip() for l in first if l.startswith("# ")), path.stem)
    description = next((l[1:].strip() for l in first if l.startswith(">")), "")
    return title, description


def build(tour_dir: pathlib.Path, book_dir: pathlib.Path) -> pathlib.Path:
    summary_file = tour_dir / "summary.json"
    rows = {}
    if summary_file.exists():
        rows = {r["notebook"]: r for r in json.loads(summary_file.read_text(encoding="utf-8"))["notebooks"]}
    book_dir.mkdir(parents=True, exist_ok=True)
    items = []
    for path in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        title, description = describe(path)
        page = tour_dir / f"{path.stem}.html"
        row = rows.get(path.stem)
        if page.exists():
            shutil.copyfile(page, book_dir / page.name)
            link = f'<a href="{html.escape(page.name)}">{html.escape(title)}</a>'
        else:
            link = html.escape(title)
        if row:
            state = (f'<span class="{row["status"]}">{row["status"]}</span>'
                     f'<br><span class="small">{row["minutes"]:.1f} min, {html.escape(row.get("finished", ""))}</span>')
            result = html.escape(row.get("headline") or (row.get("error") if row["status"] != "ok" else "") or "-")
        else:
            state, result = '<span class="none">not run</span>', "-"
        items.append(
            f'<tr><td class="num">{path.stem[:2]}</td>'
            f'<td>{link}<br><span class="desc">{html.escape(description)}</span><br>'
            f'<span class="small"><a href="{colab_link(path.name)}">open in Colab</a></span></td>'
            f"<td>{state}</td><td>{result}</td></tr>")
    prep = rows.get("(prepare shared caches)")
    if prep:      # the tour's first step: what the notebooks share (backbones, trained models, features)
        items.insert(0, f'<tr><td class="num">-</td><td>Shared caches<br><span class="desc">pretrained backbones, '
                        f'the trained models and the ablation features that the notebooks load</span></td>'
                        f'<td><span class="{prep["status"]}">{prep["status"]}</span><br><span class="small">'
                        f'{prep["minutes"]:.1f} min</span></td><td>{html.escape(prep.get("headline") or prep.get("error") or "-")}'
                        f'</td></tr>')
    index = book_dir / "index.html"
    index.write_text(f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>poster-lite: the notebook book</title>
<style>{STYLE}</style></head><body>
<h1>poster-lite</h1>
<p class="lead">POSTER, the Pyramid Cross-Fusion Transformer for facial expression recognition, taught in
notebooks, with its successor POSTER V2 beside it (notebook 09). Each page is a notebook as the last
<code>make tour</code> executed it.</p>
<table><tr><th>#</th><th>Notebook</th><th>Status</th><th>Headline</th></tr>
{chr(10).join(items)}
</table>
<p class="small">Rebuild: <code>make tour</code> (runs every notebook) then <code>make book</code>.</p>
</body></html>
""", encoding="utf-8")
    return index


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tour", type=pathlib.Path, default=REPO / "runs" / "tour")
    parser.add_argument("--out", type=pathlib.Path, default=REPO / "runs" / "book")
    args = parser.parse_args(argv)
    index = build(args.tour, args.out)
    if not (args.tour / "summary.json").exists():
        print(f"note: no tour results in {args.tour}; run `make tour` first for the pages")
    print(f"book: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
