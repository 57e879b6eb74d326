# Two commands: `make serve` (everything: venv, demo data, pipeline, service) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 3000

.PHONY: serve test bench pipeline venv clean system-deps bento keys

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "leadscore needs Python >= 3.11, found " + sys.version.split()[0]'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

## The DVC pipeline: demo_data → validate → features → train → evaluate → register
pipeline: venv
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

## Main job: API keys (in .env), venv, demo export, pipeline, then the BentoML service on localhost:$(PORT),
## behind HAProxy (installed if missing and possible; without it the worker serves alone and says so)
serve: keys pipeline
	-scripts/system-deps.sh serve
	$(BIN)/leadscore serve --port $(PORT) --print-curl

## An API key and the pseudonymisation key in .env (kept if present); prints how to use the key
keys: venv
	$(BIN)/leadscore keygen

## System packages the tests use (PostgreSQL server, headless Chromium, HAProxy), installed only when missing
system-deps:
	scripts/system-deps.sh

test: venv system-deps
	$(BIN)/python -m pytest

## A Bento (code + pinned requirements + Dockerfile) for `bentoml containerize`; see docs/deploy.md
bento: venv
	$(BIN)/python scripts/bento_context.py build/bento
	BENTOML_DO_NOT_TRACK=True $(BIN)/bentoml build build/bento

bench: venv
	$(BIN)/python bench/features_scale.py
	$(BIN)/python bench/shap_speed.py
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/serve_speed.py
	$(BIN)/python bench/serve_load.py
	$(BIN)/python bench/run.py

clean:
	rm -rf build/ dist/ data/ artifacts/ metrics/ plots/ mlflow.db ledger.db* mlartifacts/ .leadscore-cache/
