# The venv is created on first use and reused while pyproject.toml is unchanged. --no-compile, then one import of
# what nasrun uses, with writing bytecode allowed: only the modules it imports are byte-compiled, not the
# thousands in torch and Ray it never imports (40 s), and every later process reads their .pyc.
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Offline checkouts keep the datasets in ../shared/data; elsewhere torchvision downloads into ./data.
ifneq ($(wildcard ../shared/data),)
export NASRUN_DATA ?= $(abspath ../shared/data)
endif

# A CPU-only machine: `make install TORCH_INDEX=https://download.pytorch.org/whl/cpu` installs PyTorch's CPU
# wheels first (about 0.2 GB) instead of the default index's CUDA build (5.7 GB installed, mostly CUDA libraries).
TORCH_INDEX ?=

WARM_UP := import torch, torch.export, torchvision, scipy.optimize, scipy.stats, sklearn.gaussian_process, \
	matplotlib.pyplot, hydra, ray, joblib, hydra_plugins.hydra_joblib_launcher.joblib_launcher, \
	nasrun.commands.search, nasrun.commands.train, nasrun.commands.report, nasrun.commands.score

.PHONY: install run lint test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(if $(TORCH_INDEX),$(PY) -m pip install -q --no-compile torch torchvision --index-url $(TORCH_INDEX))
	$(PY) -m pip install -q --no-compile -e '.[test,ray,joblib]'
	env -u PYTHONDONTWRITEBYTECODE $(PY) -c "$(WARM_UP)"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/nasrun $(ARGS)

# ruff (lint and import order) and mypy over the package, with their settings in pyproject.toml.
lint: $(STAMP)
	$(VENV)/bin/ruff check nasrun tests
	$(VENV)/bin/mypy

# One pytest worker per core (pytest-xdist), each pinned to its core by tests/conftest.py.
test: lint
	$(PY) -m pytest -q -n auto --dist worksteal tests

bench: $(STAMP)
	$(PY) -m nasrun.bench $(ARGS)

clean:
	rm -rf $(VENV) *.egg-info
