# One command to set up and run the demo, one to set up and run the tests.
# The venv is (re)built from requirements-pinned.txt when it is missing or older than the pins.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.pinned-stamp
export OMP_NUM_THREADS ?= 1

.PHONY: setup demo test bench clean-venv comfyui

setup: $(STAMP)

$(STAMP): requirements-pinned.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements-pinned.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pistachio run all --params params/demo.yaml --wait 3600

comfyui:
	bash pistachio_testkit/comfyui/install.sh

test: $(STAMP) comfyui
	$(BIN)/python -m pytest

bench: $(STAMP)
	for f in tests/benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean-venv:
	rm -rf $(VENV)
