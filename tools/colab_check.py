"""`make colab-check`: the notebooks as Colab runs them, without Colab.

    python tools/colab_check.py                   # 00, 03 and 07 in SMOKE mode (a few minutes)
    python tools/colab_check.py 00 01 03 07       # other notebooks (name prefixes)
    python tools/colab_check.py --keep            # keep the work folder for a look afterwards

What Colab does, step by step, and what this does instead:

1. Colab has ipywidgets 7.7 preinstalled (its widget renderer speaks 7.x) and torch. Here: a
   fresh virtual environment gets `ipywidgets==7.7.*` of its own, and everything else it may
   need comes from the project's .venv without being installed again: torch alone would cost a
   minute and 5 GB. The trick: the new venv's site-packages holds a `.pth` file naming a folder
   of symbolic links, one per entry of .venv's site-packages, except poster-lite's own entries
   and the ipywidgets family. A `.pth` line appends its folder to sys.path *after* the venv's
   own site-packages, so the venv's ipywidgets 7.7 wins over .venv's 8.x, and pip sees .venv's
   packages as installed (it reads sys.path) without ever uninstalling them (they lie outside
   the venv). poster-lite itself is nowhere on that path: the notebook must install it.
2. Colab's kernel has `google.colab` imported. Here: an IPython startup file imports a
   stand-in module, so every setup cell takes its Colab branch and pip-installs poster-lite;
   `POSTER_LITE_INSTALL` points that install at the wheel built from this checkout.
3. Colab opens a notebook alone, with no repository around it. Here: only notebooks/ is copied
   into an empty folder outside the repository, data goes to a fresh POSTER_LITE_DATA there (a
   current SynthFER is copied in, as a Drive cache would provide it), and an audit hook in the
   kernel records every file opened inside the repository (other than .venv): any such read fails
   the check.

Then each notebook runs with papermill in SMOKE mode, and a small notebook builds every explorer
of poster_lite.widgets in the same kernel. The check fails when a notebook fails, when a notebook
read a file of the repository, when an explorer cannot be built under ipywidgets 7 (each must
offer a widget view and its PNG), or when ipywidgets is no longer 7.7.x after the installs.
It needs the network once, for pip to fetch ipywidgets 7.7 (later runs use pip's cache).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
DEFAULT_NOTEBOOKS = ("00", "03", "07")
IPYWIDGETS = "ipywidgets==7.7.*"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# Not inherited from .venv: poster-lite must come from the wheel, ipywidgets from the venv (7.7).
NOT_INHERITED = ("poster_lite", "__editable__", "poster-lite", "ipywidgets", "widgetsnbextension",
                 "jupyterlab_widgets", "_poster_lite")

STARTUP = '''\
# Written by tools/colab_check.py: what a Colab kernel has before the first cell.
import sys
sys.path.insert(0, {stub!r})
import google.colab  # noqa: F401  (the stand-in: setup cells take their Colab branch)

_REPO, _VENV, _LOG = {repo!r}, {venv!r}, {log!r}


def _record_repository_reads(event, args):
    """Audit hook: note each file opened inside the repository (its .venv aside)."""
    if event == "open" and args and isinstance(args[0], (str, bytes)):
        import os
        path = os.path.abspath(os.fsdecode(args[0]))
        if path.startswith(_REPO + os.sep) and not path.startswith(_VENV + os.sep):
            with open(_LOG, "a") as log:
                log.write(path + "\\n")


sys.addaudithook(_record_repository_reads)
'''

COLAB_STUB = '''"""Stand-in for Colab's google.colab (tools/colab_check.py): importable, nothing more."""
'''

EXPLORER = "# builds an explorer\n"
WIDGET_CELLS = [
    "import os, subprocess, sys\n"        # as every setup cell on Colab: install what POSTER_LITE_INSTALL names
    "subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', os.environ['POSTER_LITE_INSTALL']], check=True)",
    "import numpy as np\nimport torch\nimport ipywidgets\nimport poster_lite as pl\nfrom poster_lite import widgets\n"
    "print('ipywidgets', ipywidgets.__version__, 'poster_lite from', pl.__file__)\n"
    "torch.manual_seed(0)\nmodel = pl.build_model('poster-nano').eval()\n"
    "faces = pl.data.load('synthfer', split='test')\nsmall = [faces[i] for i in range(16)]\nface = small[0][0]\n"
    "model.meta = {'classes': list(faces.classes), 'channel_order': 'rgb'}",
    EXPLORER + "from poster_lite.shipped import ablation_results_file\n"
    "widgets.swap_depth_explorer(model=model, image=face, test_set=small, n_faces=8,\n"
    "                            ablations=ablation_results_file())",
    EXPLORER + "widgets.pyramid_explorer('poster-nano', size_presets=None)",
    EXPLORER + "widgets.face_designer(model=model)",
    EXPLORER + "upload = widgets.upload_and_predict(model=model)\nupload.predict_images([face], ['a test face'])\nupload",
    EXPLORER + "results = pl.evaluate(model, small)\nwidgets.confusion_explorer(small, results, n=4)",
]


def run(command, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=True, **kw)


def project_files() -> list:
    """What an archive of the repository holds: tracked files and new ones git does not ignore."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    return [name for name in listed if name and (REPO / name).is_file()]


def build_wheel(out: Path) -> Path:
    """The wheel of the checkout's files (built from a copy, so no build folder lands in the repository)."""
    source = out / "source"
    for name in project_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out / "dist"),
         str(source)], capture_output=True)
    return next((out / "dist").glob("poster_lite-*.whl"))


def inherit(site: Path, into: Path) -> Path:
    """A folder of links to the entries of `site` that the check venv may share (see the docstring)."""
    into.mkdir()
    for entry in site.iterdir():
        if entry.suffix == ".pth" or entry.name.startswith(NOT_INHERITED):
            continue           # .pth files would run .venv's hooks (e.g. its editable poster-lite)
        (into / entry.name).symlink_to(entry)
    return into


def make_venv(out: Path) -> Path:
    """A fresh venv over the base interpreter, with ipywidgets 7.7 and .venv's packages behind it."""
    venv = out / "venv"
    base = Path(sys.base_prefix) / "bin" / "python3"
    run([str(base), "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    own = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip())
    inherited = inherit(Path(sysconfig.get_paths()["purelib"]), out / "inherited")
    (own / "_colab_check_inherited.pth").write_text(f"{inherited}\n")
    run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", IPYWIDGETS])
    return python


def ipywidgets_version(python: Path, cwd: Path) -> str:
    return subprocess.run([str(python), "-c", "import ipywidgets; print(ipywidgets.__version__)"], cwd=cwd,
                          capture_output=True, text=True, check=True).stdout.strip()


def kernel_setup(out: Path, python: Path, env: dict) -> str:
    """A kernel spec for the venv's python, with the Colab stand-in and the audit hook at startup."""
    stub = out / "colab_stub"
    (stub / "google" / "colab").mkdir(parents=True)          # `google` stays a namespace package
    (stub / "google" / "colab" / "__init__.py").write_text(COLAB_STUB)
    ipython_dir = out / "ipython"
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text(STARTUP.format(stub=str(stub), repo=str(REPO), venv=str(REPO / ".venv"),
                                                        log=str(out / "repository_reads.log")))
    kernels = out / "jupyter" / "kernels" / "colab-check"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "colab-check", "language": "python",
        "env": {**env, "IPYTHONDIR": str(ipython_dir)}}))
    return "colab-check"


def execute(path: Path, out_dir: Path, kernel: str, parameters: dict, env: dict) -> dict:
    import papermill

    started = time.perf_counter()
    executed = out_dir / path.name
    error = None
    os.environ["JUPYTER_PATH"] = env["JUPYTER_PATH"]
    try:
        papermill.execute_notebook(str(path), str(executed), parameters=parameters, kernel_name=kernel,
                                   cwd=str(path.parent), progress_bar=False, execution_timeout=900)
    except Exception as e:  # the executed copy keeps the traceback
        error = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
    return {"notebook": path.stem, "ok": error is None, "error": error,
            "minutes": round((time.perf_counter() - started) / 60, 2), "executed": executed}


def widget_notebook(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "colab-check", "display_name": "colab-check", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("SMOKE = 1", metadata={"tags": ["parameters"]})] + \
        [nbformat.v4.new_code_cell(source) for source in WIDGET_CELLS]
    path = folder / "widgets_under_colab.ipynb"
    nbformat.write(nb, path)
    return path


def unbuilt_explorers(executed: Path) -> list:
    """Cells of the widget notebook whose explorer offered no widget view or no PNG."""
    nb = nbformat.read(executed, as_version=4)
    missing = []
    for cell in nb.cells:
        if not cell.source.startswith(EXPLORER):
            continue
        kinds = set().union(*(o.get("data", {}).keys() for o in cell.get("outputs", [])))
        if not {WIDGET_VIEW, "image/png"} <= kinds:
            missing.append(cell.source.splitlines()[-1])
    return missing


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", default=list(DEFAULT_NOTEBOOKS), help="notebook name prefixes")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--work", type=Path, help="work folder (default: a new temporary one)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    out = Path(tempfile.mkdtemp(prefix="colab-check-", dir=args.work))
    if REPO in out.resolve().parents:
        parser.error("the work folder must lie outside the repository")
    report = {"notebooks": [], "problems": []}
    try:
        print(f"work folder: {out}", flush=True)
        wheel = build_wheel(out)
        print(f"built {wheel.name}", flush=True)
        python = make_venv(out)
        before = ipywidgets_version(python, out)
        print(f"fresh venv with ipywidgets {before} preinstalled ({time.perf_counter() - started:.0f} s so far)",
              flush=True)
        if not before.startswith("7.7."):
            report["problems"].append(f"the venv has ipywidgets {before}, not 7.7.x")

        folder = out / "colab" / "notebooks"                   # Colab's /content: the notebooks alone
        shutil.copytree(REPO / "notebooks", folder)
        data = out / "colab" / "data"
        data.mkdir()
        local_synthfer = REPO / "data" / "synthfer"
        if (local_synthfer / "synthfer.json").exists():       # as a Drive cache would provide it
            shutil.copytree(local_synthfer, data / "synthfer")
        env = {"POSTER_LITE_INSTALL": str(wheel), "POSTER_LITE_DATA": str(data), "MPLBACKEND": "Agg",
               "JUPYTER_PATH": str(out / "jupyter"), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        kernel = kernel_setup(out, python, env)

        notebooks = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb") if p.name.startswith(tuple(args.only)))
        runs = out / "executed"
        runs.mkdir()
        for path in notebooks + [widget_notebook(folder)]:
            print(f"running {path.name} (SMOKE=1, Colab branch) ...", flush=True)
            row = execute(path, runs, kernel, {"SMOKE": 1}, env)
            print(f"  {'ok' if row['ok'] else 'FAILED: ' + row['error']} in {row['minutes']:.1f} min", flush=True)
            report["notebooks"].append({k: v for k, v in row.items() if k != "executed"})
            if not row["ok"]:
                report["problems"].append(f"{path.name} failed: {row['error']} (see {row['executed']})")
        executed_widgets = runs / "widgets_under_colab.ipynb"
        if executed_widgets.exists():
            missing = unbuilt_explorers(executed_widgets)
            if missing:
                report["problems"].append(f"explorers not built under ipywidgets 7: {missing}")
        after = ipywidgets_version(python, out)
        report["ipywidgets"] = {"before": before, "after": after}
        if after != before or not after.startswith("7.7."):
            report["problems"].append(f"installing poster-lite changed ipywidgets {before} -> {after}")
        installed = subprocess.run([str(python), "-c", "import poster_lite; print(poster_lite.__file__)"], cwd=out,
                                   capture_output=True, text=True).stdout.strip()
        report["poster_lite"] = installed
        if not installed.startswith(str(out / "venv")):
            report["problems"].append(f"poster_lite was not imported from the venv's wheel install: {installed!r}")
        reads_log = out / "repository_reads.log"
        reads = sorted(set(reads_log.read_text().split())) if reads_log.exists() else []
        if reads:
            report["problems"].append(f"notebooks read {len(reads)} file(s) of the repository: {reads[:5]}")
    finally:
        report["minutes"] = round((time.perf_counter() - started) / 60, 2)
        if not args.keep and not report["problems"]:
            shutil.rmtree(out, ignore_errors=True)
    print()
    for row in report["notebooks"]:
        print(f"  {row['notebook']:<28} {'ok' if row['ok'] else 'FAILED'}  {row['minutes']:.1f} min")
    print(f"ipywidgets: {report.get('ipywidgets')}; poster_lite from {report.get('poster_lite')}")
    print(f"{report['minutes']:.1f} minutes in all")
    if report["problems"]:
        print("COLAB CHECK FAILED:\n  " + "\n  ".join(report["problems"]) + f"\n(work folder kept: {out})")
        return 1
    print("colab check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
