# `make bench`: the main job. `make test`: the test suite. Both build the environment first.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export DEEPEVAL_FILE_SYSTEM := READ_ONLY
export DEEPEVAL_TELEMETRY_OPT_OUT := 1
export DEEPEVAL_DISABLE_DOTENV := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv bench test test-slow clean

venv: $(STAMP)

# torch first, pinned to the CPU build that ships on these machines; the project's own range
# (torch>=2.4) then keeps it, and a GPU box keeps its CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check "torch==2.13.0" || $(BIN)/pip install --quiet "torch>=2.4"
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

bench: venv
	$(BIN)/harness bench $(if $(EXPERIMENT),--experiment $(EXPERIMENT))

test: venv
	$(BIN)/python -m pytest tests -m "not slow" -q -n 2

test-slow: venv
	$(BIN)/python -m pytest tests -m slow -q

clean:
	rm -rf $(VENV) .cache reports
