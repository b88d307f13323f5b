# `make bench`: the main job. `make test`: the test suite. Both build the environment first.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# deepeval's environment is set by the harness itself (harness/deepeval_env.py).

.PHONY: venv data bench test lint typecheck wheels test-slow clean

venv: $(STAMP)

# torch first, pinned to the CPU build that ships on these machines; the project's own range
# (torch>=2.4) then keeps it, and a GPU box keeps its CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check "torch==2.13.0" || $(BIN)/pip install --quiet "torch>=2.4"
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

# Spider and MMLU into ./data (or $HARNESS_DATA_DIR), checksummed and checked: harness/data/sources.py.
data: venv
	$(BIN)/harness data fetch

bench: venv
	$(BIN)/harness bench $(if $(EXPERIMENT),--experiment $(EXPERIMENT))

test: venv lint typecheck
	$(BIN)/python -m pytest tests -m "not slow" -q -n 2

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy on harness/ and training/, the task contract strictly (pyproject.toml [tool.mypy]).
typecheck: venv
	$(BIN)/mypy

# Wheels of requirements/gpu.txt for an offline GPU machine (Python 3.12, x86-64 Linux by
# default): copy wheels/ there and run scripts/gpu_install.sh --wheels wheels.
WHEEL_PYTHON ?= 3.12
wheels:
	python3 -m pip download --no-deps --only-binary=:all: --python-version $(WHEEL_PYTHON) --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		-d wheels -r requirements/gpu.txt

test-slow: venv
	$(BIN)/python -m pytest tests -m slow -q

clean:
	rm -rf $(VENV) .cache reports
