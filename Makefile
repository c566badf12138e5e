# The venv is created on first use and reused while pyproject.toml is unchanged.
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Offline checkouts keep the datasets in ../shared/data; elsewhere torchvision downloads into ./data.
ifneq ($(wildcard ../shared/data),)
export NASRUN_DATA ?= $(abspath ../shared/data)
endif

.PHONY: install run test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/nasrun $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q tests

bench: $(STAMP)
	$(PY) -m nasrun.bench $(ARGS)

clean:
	rm -rf $(VENV) *.egg-info
