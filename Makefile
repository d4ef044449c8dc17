# v2a — the two commands:  make train   (build the demo data, train v2a_tiny on CPU)
#                          make test    (the test suite)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= data/synthetic
STAMP := $(VENV)/.installed

.PHONY: install system-deps train data test lint clean dialogue

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall when the dependency list changes.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,demo]"
	touch $(STAMP)

install: $(STAMP)

# System packages: espeak-ng (talking-head speech of the full benchmark), ffmpeg (ffmpeg/ffprobe in benches),
# chromium + chromium-driver (the demo app's headless-browser test, tests/test_demo_app.py).
system-deps:
	@if command -v espeak-ng >/dev/null && command -v ffprobe >/dev/null && command -v chromium >/dev/null && \
	  command -v chromedriver >/dev/null; then echo "system packages present"; \
	else SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends espeak-ng libespeak-ng1 ffmpeg \
	  chromium chromium-driver; fi

$(DATA)/test/index.json: | $(STAMP)
	$(PY) data_prep/make_synthetic.py out=$(DATA)

data: $(STAMP) $(DATA)/test/index.json

train: data
	$(PY) train.py experiment=v2a_tiny $(ARGS)

# The dialogue recipe on CPU (docs/benchmarks.md, dialogue): talking-head data -> lip aligner -> phoneme-track
# model -> evaluation with Whisper (the `eval` extra), ending with "metrics: PATH".
# The model trains on the mixed clips and on talking heads alone (DIALOGUE_SOLO), with the mixed clips' tokenizer.
DIALOGUE_DATA ?= data/synthetic_dialogue
DIALOGUE_SOLO ?= data/synthetic_dialogue_solo
DIALOGUE_OUT ?= outputs/dialogue
DIALOGUE_STEPS ?= 1000

$(DIALOGUE_DATA)/test/index.json: | $(STAMP)
	$(PY) data_prep/make_synthetic.py --config-name synthetic_dialogue out=$(DIALOGUE_DATA)
	$(PY) data_prep/train_tokenizer.py root=$(DIALOGUE_DATA)

$(DIALOGUE_SOLO)/test/index.json: | $(STAMP)
	$(PY) data_prep/make_synthetic.py --config-name synthetic_dialogue_solo out=$(DIALOGUE_SOLO)

dialogue: system-deps $(STAMP) $(DIALOGUE_DATA)/test/index.json $(DIALOGUE_SOLO)/test/index.json
	$(PY) -m pip install --quiet -e ".[eval]"
	$(PY) train.py experiment=aligner_tiny data.root=$(DIALOGUE_DATA) hydra.run.dir=$(DIALOGUE_OUT)/aligner
	$(PY) train.py experiment=v2a_dialogue_aligned_tiny 'data.root=[$(DIALOGUE_DATA),$(DIALOGUE_SOLO)]' \
	    data.tokenizer=$(DIALOGUE_DATA)/tokenizer.model trainer.max_steps=$(DIALOGUE_STEPS) hydra.run.dir=$(DIALOGUE_OUT)/model
	$(PY) evaluate.py ckpt=$(DIALOGUE_OUT)/model/export out=$(DIALOGUE_OUT)/eval data=synthetic \
	    data.root=$(DIALOGUE_DATA) dialogue=true timing=video aligner=$(DIALOGUE_OUT)/aligner/export whisper=true \
	    max_clips=100 batch_size=25

test: system-deps $(STAMP)
	$(PY) -m pytest tests $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check v2a data_prep tests bench train.py evaluate.py generate.py
	$(VENV)/bin/lint-imports    # the layer contracts in pyproject.toml (docs/architecture.md)

clean:
	rm -rf outputs multirun .pytest_cache
