# Every target installs what it needs first, so each works on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export TF_CPP_MIN_LOG_LEVEL ?= 2

# Bazel (Debian's bazel-bootstrap, 4.2), offline; its outputs stay in .bazel/ (ignored).
# BAZEL_TESTS: what bazel-test runs (its slow-tagged tests left out); BAZEL_STARTUP: e.g. --batch.
BAZEL_TESTS ?= //...
BAZEL_STARTUP ?=
BAZEL := bazel --output_user_root=$(CURDIR)/.bazel/output_user_root \
	--output_base=$(CURDIR)/.bazel/output_base $(BAZEL_STARTUP)
BAZEL_FLAGS := --repo_env=SFOCUS_VENV=$(abspath $(VENV))

DEMO_RUN := runs/demo
DEMO_EXPORT := savedmodels/fashion_mnist_demo

.PHONY: setup data demo test test-slow bazel bazel-build bazel-test bench bench-accelerator \
	studies-confusion tensorboard-screenshots clean

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

# Train SFOCUS on Fashion-MNIST (offline), evaluate, write overlays and metrics, export.
demo: setup data
	rm -rf $(DEMO_RUN)
	$(VENV)/bin/sfocus-train --config=fashion_mnist_demo --workdir=$(DEMO_RUN)
	$(VENV)/bin/sfocus-export --workdir=$(DEMO_RUN) --export_dir=$(DEMO_EXPORT) --model_version=1 --overwrite
	@echo "metrics: $(DEMO_RUN)/metrics.json; overlays: $(DEMO_RUN)/attention/final.png"

# The suite runs in TEST_WORKERS processes (pytest-xdist), one test file per process at a
# time so that a file's shared fixtures are built once: one per core, at most 4.
# PYTEST_FLAGS: more pytest flags, e.g. PYTEST_FLAGS=--durations=15.
TEST_WORKERS ?= $(shell n=$$(nproc); [ $$n -gt 4 ] && n=4; echo $$n)
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(PYTEST_FLAGS)

test: setup data
	$(PYTEST) -m "not slow"

test-slow: setup data
	$(PYTEST) -m slow

bazel:
	command -v bazel >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq bazel-bootstrap; }

bazel-build: setup bazel
	$(BAZEL) build $(BAZEL_FLAGS) //...

# The fast tests, as `make test` runs them, one Bazel target per test module.
bazel-test: setup data bazel
	$(BAZEL) test $(BAZEL_FLAGS) --test_tag_filters=-slow $(BAZEL_TESTS)

# The two studies of docs/confusion_benchmarks.md (scarce data, two garments), 6 seeds
# each; finished runs are in git, so this trains only what is missing. About 2 h and
# 3.8 h on 2 CPU cores; PARALLEL=N runs N at once (a GPU or many cores).
PARALLEL ?= 1
studies-confusion: setup data
	$(VENV)/bin/sfocus-reproduce --config=fashion_mnist_scarce --grid=default \
		--seeds=0,1,2,3,4,5 --parallel=$(PARALLEL) --workdir=studies/fashion_mnist_scarce
	$(VENV)/bin/sfocus-reproduce --config=fashion_mnist_duo_study --grid=default \
		--seeds=0,1,2,3,4,5 --parallel=$(PARALLEL) --workdir=studies/fashion_mnist_duo

# Ratios measured side by side; docs/benchmarks.md holds a run's tables.
bench: setup data
	$(PY) bench/step_time.py
	$(PY) bench/pipeline.py
	$(PY) bench/serving.py
	$(PY) bench/memory.py

# Plain against SFOCUS steps on the devices found (XLA, precisions, replicas), and the
# attention signature's latency: runs/bench/accelerator.{json,md}; sized for 5 minutes on one
# GPU (rows past --time_budget_s are recorded as not started).
bench-accelerator: setup data
	$(PY) bench/accelerator.py --output_json=runs/bench/accelerator.json \
		--output_md=runs/bench/accelerator.md

# TensorBoard on a finished run (RUN, default the demo's) in headless Chromium, loopback
# only: checks the HParams trial with both logdirs, screenshots into docs/images/.
RUN ?= $(DEMO_RUN)
tensorboard-screenshots: setup
	command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }
	$(PY) tools/tensorboard_screenshots.py --run=$(RUN) --out=docs/images

clean:
	[ ! -d .bazel/output_base ] || $(BAZEL) clean --expunge
	rm -rf $(VENV) *.egg-info .pytest_cache .bazel
