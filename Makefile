# One command to set up and run the demo, one to set up and run the tests.
# The venv is (re)built from requirements-pinned.txt when it is missing or older than the pins.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.pinned-stamp
export OMP_NUM_THREADS ?= 1
# The named kernel every Jupyter of this user finds (the pod's own JupyterLab too): the user's kernelspec
# folder (~/.local/share/jupyter/kernels, or $$JUPYTER_DATA_DIR/kernels). KERNEL_WHERE=--prefix=/usr/local
# registers it system-wide instead, for a Jupyter that runs as another user. It loads the env file first.
KERNEL_NAME := pistachio
KERNEL_DISPLAY := Pistachio (.venv)
KERNEL_WHERE ?= --user

.PHONY: setup kernel demo test bench clean-venv comfyui

# idempotent: the venv is rebuilt only when the pins change; the kernel is re-registered every time
# (a pod restart can wipe the home folder while the venv on the volume survives)
setup: $(STAMP) kernel

kernel: $(STAMP)
	$(BIN)/python -m pistachio_nb.pod.kernel install $(KERNEL_WHERE) --name $(KERNEL_NAME) --display-name "$(KERNEL_DISPLAY)"

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
