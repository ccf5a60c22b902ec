# Every target installs what it needs first, so each works on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup data test test-slow bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

# Fashion-MNIST, offline, from Debian's package (the default dataset).
data: $(FASHION_MNIST)

$(FASHION_MNIST):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq dataset-fashion-mnist

test: setup data
	$(PY) -m pytest -q -m "not slow"

test-slow: setup data
	$(PY) -m pytest -q -m slow

bench: setup
	$(PY) bench/step_time.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
