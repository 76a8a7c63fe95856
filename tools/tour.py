"""`make tour`: run every notebook headless, keep the executed copies and their HTML.

    python tools/tour.py                        # all notebooks/NN_*.ipynb, default mode (SMOKE=0)
    python tools/tour.py 03 04                  # only notebooks whose name starts with these
    python tools/tour.py -p DEVICE=cuda -p DATA=raf-db
    python tools/tour.py --smoke                # SMOKE=1, what the tests run
    python tools/tour.py --faithful             # POSTER_LITE_FAST=0: every training and inference on
                                                # the faithful float32 eager path (the reference)

Each notebook runs with papermill (its `parameters` cell overridden by -p values,
SMOKE=0 unless --smoke) in notebooks/ as the working directory. Results go to
runs/tour/: NN_name.ipynb (executed), NN_name.html (nbconvert) and summary.json,
and a table is printed: notebook, status, minutes, headline.

Before the notebooks, a default-mode tour of the whole suite makes what several
notebooks share and cache (`--no-prepare` skips it): the pretrained nano backbones and
the trained poster-nano, image-only-nano and poster-v2-nano. What ships with the package
(poster_lite/shipped/) takes seconds: the backbones are installed into
data/cache/backbones/ and each shipped model is loaded once (a model trained here and cached
is loaded instead). A shared model that is neither shipped nor cached is not trained here:
the notebook that needs it trains it (with a progress bar) and the row says so. Nothing in
this step trains or computes features. It is timed and listed as its own row. (Notebook 07's
ablation grid reads its shipped results; the frozen features it trains on are computed only
where 07 asks for them.)

A notebook states its headline number by printing one line that starts with
`HEADLINE:` (e.g. `print(f"HEADLINE: test accuracy {acc:.1%}")`); the last such
line is the one reported. A notebook that prints none shows "-".
"""
from __future__ import annotations

import argparse
import ast
import copy
import datetime
import json
import logging
import os
import pathlib
import sys
import time

import nbformat

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
OUT = REPO / "runs" / "tour"
HEADLINE = "HEADLINE:"
SHARED_MODELS = ("poster-nano", "image-only-nano", "poster-v2-nano")     # tools/zoo.py's MODELS


def find_notebooks(prefixes=()) -> list[pathlib.Path]:
    found = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if prefixes:
        found = [p for p in found if any(p.name.startswith(x) for x in prefixes)]
    return found


def parse_parameter(text: str) -> tuple[str, object]:
    """'EPOCHS=3' -> ('EPOCHS', 3); values are Python literals, else plain strings."""
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value


def headline(nb: nbformat.NotebookNode) -> str | None:
    """The text of the last `HEADLINE:` line the notebook printed, if any."""
    found = None
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stdout":
                for line in output.get("text", "").splitlines():
                    if line.startswith(HEADLINE):
                        found = line[len(HEADLINE):].strip()
    return found


def first_error(nb: nbformat.NotebookNode) -> str | None:
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"{output.get('ename')}: {output.get('evalue')}"
    return None


def execute(path: pathlib.Path, out_dir: pathlib.Path, parameters: dict,
            cell_timeout: int | None = None, html: bool = True, verbose: bool = False) -> dict:
    """Run one notebook; write the executed copy (and HTML); return its summary row."""
    import papermill

    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / path.name
    started = datetime.datetime.now(datetime.timezone.utc)      # papermill's cell times are absolute: time to
    start = time.perf_counter()                                 # a cell's output = its end_time - started
    status, error = "ok", None
    try:
        papermill.execute_notebook(str(path), str(executed), parameters=parameters,
                                   cwd=str(path.parent), kernel_name="python3",
                                   progress_bar=False, log_output=verbose,
                                   execution_timeout=cell_timeout)
    except Exception as e:  # the executed copy (with the traceback in it) is still written
        status, error = "failed", f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
    minutes = (time.perf_counter() - start) / 60
    row = {"notebook": path.stem, "status": status, "minutes": round(minutes, 2),
           "headline": None, "error": error, "started": started.isoformat()}
    if executed.exists():
        nb = nbformat.read(executed, as_version=4)
        row["headline"] = headline(nb)
        row["error"] = row["error"] if status == "ok" else (first_error(nb) or error)
        if html:
            write_html(nb, out_dir / f"{path.stem}.html")
    return row


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def static_copy(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook as a static page shows it: without live widgets.

    papermill saves the widget state in the executed notebook, and with that state nbconvert
    renders each explorer as a live widget, which a static page cannot run: an empty box. Without
    the state (and without the widget view where an output has a picture too), nbconvert falls
    back to the next format of each output: the explorer's PNG of its current setting.
    """
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data and len(data) > 1:
                del data[WIDGET_VIEW]
    return nb


def write_html(nb: nbformat.NotebookNode, target: pathlib.Path) -> None:
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(static_copy(nb))
    target.write_text(body, encoding="utf-8")


def format_table(rows: list[dict]) -> str:
    header = ("notebook", "status", "minutes", "headline")
    lines = [[r["notebook"], r["status"], f"{r['minutes']:.1f}",
              r["headline"] or (r["error"] if r["status"] != "ok" else None) or "-"] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths[:-1]) + "  {}"
    rule = "  ".join("-" * w for w in widths)
    total = sum(r["minutes"] for r in rows)
    return "\n".join([fmt.format(*header), rule, *(fmt.format(*l) for l in lines), rule,
                      f"{sum(r['status'] == 'ok' for r in rows)}/{len(rows)} ok, {total:.1f} minutes"])


def update_summary(path: pathlib.Path, rows: list[dict]) -> None:
    """Merge `rows` into summary.json, so running a few notebooks keeps the others' rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(path.read_text(encoding="utf-8"))["notebooks"] if path.exists() else []
    merged = {r["notebook"]: r for r in previous}
    merged.update({r["notebook"]: r for r in rows})
    ordered = [merged[name] for name in sorted(merged)]
    path.write_text(json.dumps({"notebooks": ordered}, indent=2), encoding="utf-8")


def prepare(device: str = "auto") -> dict:
    """Make the suite's shared caches: install the shipped backbones, load each shipped (or cached)
    shared model once. Seconds; it never trains (a model with neither is left to its notebook)."""
    import poster_lite as pl
    from poster_lite import shipped
    from poster_lite.model_cache import model_dir
    from poster_lite.pretrain import ensure_pretrained_backbones

    device = None if device == "auto" else device          # the package's own choice: a GPU if there is one
    start = time.perf_counter()
    status, error, steps = "ok", None, []
    try:
        reports = ensure_pretrained_backbones("poster-nano", device=device)
        steps.append(f"backbones: identity {reports['image_backbone']['identity_accuracy']:.0%}, "
                     f"NME {reports['landmark_backbone']['nme']:.3f}")
        # 00, 03, 06, 08 use the first; 06 the first two; 09 the first and poster-v2-nano.
        for name in SHARED_MODELS:
            if not (shipped.has_model(name) or (model_dir(name) / "best").exists()):
                steps.append(f"{name}: not shipped, not cached (the notebook that uses it trains it)")
                continue
            meta = pl.trained_model(name, device=device).meta
            metrics, source = meta.get("metrics", {}), meta.get("source", "trained here")
            steps.append(f"{name} test {metrics['test_accuracy']:.1%} ({source})" if "test_accuracy" in metrics
                         else f"{name} ({source})")
    except Exception as e:  # reported in the table like a failed notebook
        status, error = "failed", f"{type(e).__name__}: {e}"
    return {"notebook": "(prepare shared caches)", "status": status,
            "minutes": round((time.perf_counter() - start) / 60, 2), "headline": "; ".join(steps) or None,
            "error": error}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="notebook name prefixes, e.g. 03 04")
    parser.add_argument("-p", "--parameter", action="append", type=parse_parameter, default=[],
                        metavar="NAME=VALUE", help="override a value of the parameters cell")
    parser.add_argument("--smoke", action="store_true", help="SMOKE=1: tiny data, a few steps")
    parser.add_argument("--out", type=pathlib.Path, default=OUT)
    parser.add_argument("--cell-timeout", type=int, default=None, help="seconds per cell")
    parser.add_argument("-v", "--verbose", action="store_true", help="stream the notebooks' output")
    parser.add_argument("--no-prepare", dest="prepare", action="store_false",
                        help="skip making the shared caches first (notebooks then make what they need)")
    parser.add_argument("--prepare-only", action="store_true", help="only make the shared caches (and their row)")
    parser.add_argument("--faithful", action="store_true",
                        help="POSTER_LITE_FAST=0 for the notebooks' kernels: the faithful float32 eager path")
    args = parser.parse_args(argv)
    if args.faithful:              # the kernels papermill starts inherit this process's environment
        os.environ["POSTER_LITE_FAST"] = "0"

    if args.verbose:       # papermill logs the cells' output through `logging`
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    notebooks = find_notebooks(args.only)
    if not notebooks:
        print(f"no notebooks match {args.only} in {NOTEBOOKS}", file=sys.stderr)
        return 2
    parameters = {"SMOKE": int(args.smoke), **dict(args.parameter)}
    rows = []
    if args.prepare_only:
        notebooks = []
    if args.prepare_only or (args.prepare and not args.smoke and not parameters.get("SMOKE") and not args.only):
        print(f"preparing the shared caches (backbones, {', '.join(SHARED_MODELS)}) ...", flush=True)
        rows.append(prepare(str(parameters.get("DEVICE", "auto"))))
        print(f"  {rows[-1]['status']} in {rows[-1]['minutes']:.1f} min: {rows[-1]['headline']}", flush=True)
    def record():                   # after each step: a tour stopped halfway keeps the rows it finished
        for row in rows:
            row.setdefault("finished", time.strftime("%Y-%m-%d %H:%M"))
            row.update(parameters=parameters, fast_path=os.environ.get("POSTER_LITE_FAST", "1") != "0")
        update_summary(args.out / "summary.json", rows)

    for path in notebooks:
        print(f"running {path.name} with {parameters} ...", flush=True)
        rows.append(execute(path, args.out, parameters, args.cell_timeout, verbose=args.verbose))
        print(f"  {rows[-1]['status']} in {rows[-1]['minutes']:.1f} min", flush=True)
        record()
    record()
    print()
    print(format_table(rows))
    print(f"\nexecuted notebooks and HTML: {args.out}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
