# The two commands of the quick start: `make lab` and `make test`.
# Both create .venv when it is missing and install the project into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: lab test lint install notebooks tour book labs ablations baselines zoo colab-check bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Jupyter refuses to run as root unless told (containers, CI, cloud shells).
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/ $(ROOT_FLAG)

test: $(STAMP)
	$(PY) -m pytest -q --durations=15

# The rules are in pyproject.toml ([tool.ruff]). CI runs `make lint test`.
lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Every notebook is a jupytext pair (jupytext.toml): tools/notebook_sources/NN_name.py, the source
# we edit, and notebooks/NN_name.ipynb, what students open. This carries the newer side of each pair
# to the other (a new source gets its notebook, a new notebook its source), then strips outputs,
# execution counts and run metadata, keeping cell ids, so a re-sync of unchanged files changes nothing.
# nbstripout drops Jupyter's own timings by default; RUN_METADATA is what papermill, ipywidgets and
# jupytext add on top (tests/test_notebooks.py verifies the committed notebooks with the same keys).
NOTEBOOK_PAIRS = $(sort $(wildcard tools/notebook_sources/[0-9][0-9]_*.py notebooks/[0-9][0-9]_*.ipynb))
RUN_METADATA := metadata.papermill metadata.widgets metadata.jupytext cell.metadata.papermill cell.metadata.execution

notebooks: $(STAMP)
	$(VENV)/bin/jupytext --sync $(NOTEBOOK_PAIRS)
	$(VENV)/bin/nbstripout --keep-id --extra-keys "$(RUN_METADATA)" notebooks/[0-9][0-9]_*.ipynb

# Run every notebook headless in the default mode; pass notebook prefixes or
# parameters through TOUR_ARGS, e.g. make tour TOUR_ARGS="03 04 -p DEVICE=cuda".
# TOUR_ARGS=--faithful runs every notebook on the faithful float32 eager path (POSTER_LITE_FAST=0).
tour: $(STAMP)
	$(PY) tools/tour.py $(TOUR_ARGS)

# A static site over the tour's HTML pages: runs/book/index.html.
book: $(STAMP)
	$(PY) tools/book.py

# Student versions of the notebooks (solution cells stubbed) in labs/.
labs: $(STAMP)
	$(PY) tools/make_labs.py

# The nano-scale ablation grid of notebook 07, resumable per (row, seed) (tools/ablations.py says
# how): the frozen-feature protocol by default (poster_lite/shipped/ablations_nano_frozen.json),
# ABLATION_ARGS="--protocol paper" for the paper's (ablations_nano_paper.json). Running time on
# this 2-core CPU (AMD EPYC, AVX512-BF16; measured 2026-11-30, one thread per process, two or
# three trainings sharing the two cores): the frozen features once, 1.6 min idle, 12 under load
# (cached); one frozen-feature row-seed with early stopping 2 to 20 min (103 s for depth 1 to
# 1,216 s for depth 6; 8 to 19 epochs), the shipped full grid (11 rows x 3 seeds, all stopped by
# patience) 292 min of training in all, about 2.5 h of wall time in two parallel processes.
# Seeds and rows can run in parallel processes, each with --out, joined with --merge.
# The paper protocol trains end to end like the shared models: 2.7 to 3.8 min an epoch at one
# thread (poster-nano: 28 epochs in 105 min; image-only-nano: 27 epochs, about 75 min of steps),
# so 1 to 2 h per row-seed and about 50 h of one core for 33: a GPU job.
# E.g. make ablations ABLATION_ARGS="--rows image-only-nano poster-nano-d4 --seeds 0 1 2".
ablations: $(STAMP)
	nice -n 10 $(PY) tools/ablations.py $(ABLATION_ARGS)

# The plain baselines beside POSTER (small CNN, landmark MLP on true and predicted landmarks),
# 3 seeds each with early stopping, resumable per (model, seed): poster_lite/shipped/baselines_nano.json.
baselines: $(STAMP)
	nice -n 10 $(PY) tools/baselines.py $(BASELINE_ARGS)

# The trained models shipped in poster_lite/shipped/ (pretrain + train + export, about 30 minutes
# on 2 CPU cores; each step skipped when cached). ZOO_ARGS="--export-only" converts the cached
# trained models only; ZOO_ARGS="--data /tmp/zoo" works in a fresh data folder.
zoo: $(STAMP)
	nice -n 10 $(PY) tools/zoo.py $(ZOO_ARGS)

# The notebooks as Colab runs them: the built wheel in a fresh venv with ipywidgets 7.7, only
# notebooks/ copied out of the repository, 00, 03 and 07 in SMOKE mode through the Colab branch
# of the setup cell, and every explorer built under ipywidgets 7 (tools/colab_check.py).
colab-check: $(STAMP)
	$(PY) tools/colab_check.py $(COLAB_CHECK_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/speed.py

clean:
	rm -rf runs/ .pytest_cache
