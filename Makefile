# The two commands of the quick start: `make lab` and `make test`.
# Both create .venv when it is missing and install the project into it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: lab test install tour book labs ablations bench clean

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

# Run every notebook headless in the default mode; pass notebook prefixes or
# parameters through TOUR_ARGS, e.g. make tour TOUR_ARGS="03 04 -p DEVICE=cuda".
tour: $(STAMP)
	$(PY) tools/tour.py $(TOUR_ARGS)

# A static site over the tour's HTML pages: runs/book/index.html.
book: $(STAMP)
	$(PY) tools/book.py

# Student versions of the notebooks (solution cells stubbed) in labs/.
labs: $(STAMP)
	$(PY) tools/make_labs.py

# The nano-scale ablation grid of notebook 07 (about 45 minutes on 2 CPU cores, one seed);
# rewrites notebooks/results/ablations_nano.json. E.g. make ablations ABLATION_ARGS="--seeds 0 1".
ablations: $(STAMP)
	nice -n 10 $(PY) tools/ablations.py $(ABLATION_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/speed.py

clean:
	rm -rf runs/ .pytest_cache
