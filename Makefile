# v2a — the two commands:  make train   (build the demo data, train v2a_tiny on CPU)
#                          make test    (the test suite)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= data/synthetic
STAMP := $(VENV)/.installed

.PHONY: install train data test lint clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall when the dependency list changes.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

$(DATA)/test/index.json: | $(STAMP)
	$(PY) data_prep/make_synthetic.py out=$(DATA)

data: $(STAMP) $(DATA)/test/index.json

train: data
	$(PY) train.py experiment=v2a_tiny $(ARGS)

test: $(STAMP)
	$(PY) -m pytest tests $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check v2a data_prep tests bench train.py evaluate.py generate.py

clean:
	rm -rf outputs multirun .pytest_cache
