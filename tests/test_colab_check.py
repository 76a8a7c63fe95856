"""The Colab-shaped check (tools/colab_check.py, `make colab-check`): its parts, each shown to catch what
it is there to catch. The whole check (a wheel, a fresh venv with ipywidgets 7.7, notebooks 00, 03 and 07
run through the Colab branch of their setup cell) takes minutes and the network once: `make colab-check`,
run by CI after the tests (.ci/run)."""
import json
import pathlib
import subprocess
import sys

import nbformat

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import colab_check  # noqa: E402


def test_the_venv_inherits_packages_but_not_poster_lite_or_ipywidgets(tmp_path):
    site = tmp_path / "site-packages"
    for name in ("torch", "torch-2.5.0.dist-info", "poster_lite", "poster_lite-0.1.0.dist-info",
                 "__editable__.poster_lite-0.1.0.pth", "__editable___poster_lite_0_1_0_finder.py", "ipywidgets",
                 "ipywidgets-8.1.9.dist-info", "widgetsnbextension", "jupyterlab_widgets", "distutils-precedence.pth",
                 "ipykernel"):
        (site / name).mkdir(parents=True)
    shared = colab_check.inherit(site, tmp_path / "inherited")
    assert sorted(p.name for p in shared.iterdir()) == ["ipykernel", "torch", "torch-2.5.0.dist-info"]
    assert all(p.is_symlink() and p.resolve().parent == site for p in shared.iterdir())


def _explorer_cell(outputs):
    cell = nbformat.v4.new_code_cell(colab_check.EXPLORER + "widgets.face_designer()")
    cell.outputs = [nbformat.v4.new_output("display_data", data=data) for data in outputs]
    return cell


def test_an_explorer_without_widget_view_or_picture_is_reported(tmp_path):
    nb = nbformat.v4.new_notebook()
    built = {"text/plain": "<FaceDesigner>", "image/png": "iVBO", colab_check.WIDGET_VIEW: {"model_id": "x"}}
    nb.cells = [nbformat.v4.new_code_cell("import poster_lite"), _explorer_cell([built]),
                _explorer_cell([{"text/plain": "FaceDesigner(...)"}])]
    path = tmp_path / "w.ipynb"
    nbformat.write(nb, path)
    assert colab_check.unbuilt_explorers(path) == ["widgets.face_designer()"]


def test_the_kernel_startup_records_reads_of_the_repository(tmp_path):
    """The audit hook that the check's kernel starts with notes a read of a repository file (not .venv)."""
    log = tmp_path / "reads.log"
    startup = colab_check.STARTUP.format(stub=str(tmp_path / "stub"), repo=str(REPO), venv=str(REPO / ".venv"),
                                         log=str(log))
    (tmp_path / "stub" / "google" / "colab").mkdir(parents=True)
    (tmp_path / "stub" / "google" / "colab" / "__init__.py").write_text(colab_check.COLAB_STUB)
    script = startup + "\nimport sys\nprint('google.colab' in sys.modules)\n" \
        f"open({str(REPO / 'README.md')!r}).read()\nopen({str(REPO / 'pyproject.toml')!r}).read()\n" \
        f"open({str(tmp_path / 'elsewhere.txt')!r}, 'w').write('x')\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True", "the Colab stand-in is imported before the first cell"
    assert log.read_text().split() == [str(REPO / "README.md"), str(REPO / "pyproject.toml")]


def test_the_setup_cells_install_what_POSTER_LITE_INSTALL_names():
    """The check installs the local wheel through the notebooks' own Colab branch: that branch must
    read POSTER_LITE_INSTALL."""
    for path in sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        setup = next(c.source for c in nbformat.read(path, as_version=4).cells if "google.colab" in c.source)
        assert 'os.environ.get(\n        "POSTER_LITE_INSTALL"' in setup, f"{path.name}: the Colab branch ignores POSTER_LITE_INSTALL"


def test_the_kernel_spec_runs_the_venv_python_with_the_colab_startup(tmp_path):
    python = tmp_path / "venv" / "bin" / "python"
    name = colab_check.kernel_setup(tmp_path, python, {"POSTER_LITE_INSTALL": "x.whl"})
    spec = json.loads((tmp_path / "jupyter" / "kernels" / name / "kernel.json").read_text())
    assert spec["argv"][0] == str(python)
    assert spec["env"]["POSTER_LITE_INSTALL"] == "x.whl"
    startup = pathlib.Path(spec["env"]["IPYTHONDIR"]) / "profile_default" / "startup" / "00-colab.py"
    assert "import google.colab" in startup.read_text()
