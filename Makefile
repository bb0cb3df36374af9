# The front door. Each target sets up what it needs: on a fresh clone `make run` and `make test` are one command each.
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
PY := $(BIN)/python
# the recipe's revision is in the stamp too: a change to how the environment is installed reinstalls it
SETUP_REVISION := 2
STAMP := $(VENV)/.installed-$(shell (echo $(SETUP_REVISION); cat requirements.lock pyproject.toml) | cksum | cut -d' ' -f1)
UV_VERSION := 0.13.9
PYTEST_ARGS ?=
# make test's processes (pytest-xdist): each takes one test file at a time, in the order tests/conftest.py sorts them
# (the retraining DAG run's own file first, the files that read its result last)
TEST_WORKERS ?= 2

# Stage commands in dvc.yaml say `python -m pipeline ...`: run them with the project's interpreter.
export PATH := $(BIN):$(PATH)
# TF_CPP_MIN_LOG_LEVEL is left to `python -m pipeline` (pipeline/__main__.py): 3 without a GPU, which hides the
# CUDA probe's cuInit error that level 2 lets through, 2 with one; a level set by the user is kept.
export GX_ANALYTICS_ENABLED := false
export DVC_NO_ANALYTICS := 1

.PHONY: setup run test test-fast lint bench lock data pull clean cluster-setup cluster-test seed-remote

setup: $(STAMP)

# --compile-bytecode: every package's .pyc is written once, here. Without them a process compiles all it imports, every
# time, where PYTHONDONTWRITEBYTECODE is set (as on our build machines): 9 of the 14 s of a TensorFlow + Keras import.
$(STAMP):
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(PY) requirements.lock
	$(BIN)/uv pip install --quiet --python $(PY) --no-deps -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

# data/raw comes from the DVC remote (an in-repo folder holding the sample dataset; see README for the real data).
data: setup
	$(BIN)/dvc pull --quiet data.dvc

# `dvc pull` for a fresh clone: everything the DVC remote holds, and a zero exit status. The in-repo remote holds the
# sample data only; the outputs of the sample run that dvc.lock names (two models of about 220 MB among them, too
# large for a git repository) are not in it, and a bare `dvc pull` exits 1 listing them. `make run` rebuilds them.
pull: setup
	$(BIN)/dvc pull --allow-missing
	@echo "pulled what the DVC remote holds; outputs it lacks are rebuilt by \`make run\` (dvc repro)"

# data/raw into a cluster's DVC remote by hand: what the compose service dvc-seed runs (docker/seed-remote.sh). Needs
# EMOTION_GIT_REMOTE, EMOTION_DVC_REMOTE (and EMOTION_DVC_REMOTE_ENDPOINT, AWS_* for MinIO/S3) in the environment.
seed-remote: setup
	bash docker/seed-remote.sh

# The stages run by `python -m pipeline repro` (pipeline/commands/repro.py): each through `dvc repro`, the ones that do
# not read each other's outputs side by side, RUN_JOBS at a time. On 2 CPU cores the sample's two trainings finish
# sooner together than one after the other, with the same results; on one GPU use RUN_JOBS=1 (or plain `dvc repro`).
# Then the headline figures (Test macro F1 and accuracy per model); `dvc metrics show` gives every figure.
RUN_JOBS ?= 2
run: data
	$(PY) -m pipeline repro --jobs $(RUN_JOBS)
	$(BIN)/dvc metrics show metrics/headline.json

test: setup
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

# the edit loop (about a minute): unit, data and params tests; no integration runs, no whole-model conversions
test-fast: setup
	$(PY) -m pytest tests/unit tests/data -m "not integration and not slow" $(PYTEST_ARGS)

# The retraining DAG on a real cluster on this machine: PostgreSQL, Redis and sshd from Debian's packages (installed
# where missing), the Celery provider and its drivers from requirements-cluster.lock, then one run through the
# scheduler and two Celery workers with faults on its way (tests/celery_cluster/). The figures: .cluster-test/report.md
CLUSTER_STAMP := $(VENV)/.cluster-$(shell cat requirements-cluster.lock | cksum | cut -d' ' -f1)
cluster-setup: setup $(CLUSTER_STAMP)

$(CLUSTER_STAMP): $(STAMP)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(PY) -r requirements-cluster.lock
	@rm -f $(VENV)/.cluster-*
	@touch $@

cluster-test: cluster-setup
	EMOTION_CLUSTER_REPORT=$(abspath .cluster-test/report.md) $(PY) -m pytest tests/celery_cluster -m cluster \
		-p no:cacheprovider $(PYTEST_ARGS)
	@cat .cluster-test/report.md

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	$(PY) -m pipeline bench --out bench/results.json

# requirements-gpu.lock: the same pins plus the CUDA wheels of tensorflow[and-cuda], for the GPU images
lock: setup
	$(BIN)/uv pip compile --quiet requirements.in -o requirements.lock --python-version 3.11
	$(BIN)/uv pip compile --quiet requirements-gpu.in -c requirements.lock -o requirements-gpu.lock \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28
	$(BIN)/uv pip compile --quiet requirements-cluster.in -c requirements.lock -o requirements-cluster.lock \
		--python-version 3.11

clean:
	rm -rf $(VENV)
