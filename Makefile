# ray-maddpg: every target installs what it needs into .venv first.
# A second call reinstalls nothing unless requirements.lock or trainer/pyproject.toml changed.

PYTHON  ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# checkov pins versions (packaging, networkx, ...) that clash with Ray's, so it gets its own venv.
CHECKOV_VERSION := 3.3.30
CHECKOV := $(VENV)/checkov/bin/checkov
# The peer control of issue 14 (bench/peer_agilerl.py): AgileRL pins its own stack (jax, wandb,
# minari ...) and imports peft without declaring it, so it gets its own venv too.
PEER_VENV := .venv-peer
PEER_PACKAGES := torch==2.13.0 agilerl==2.58.0 mpe2==1.1.1 peft==0.21.2
# jsonschema imports rfc3987-syntax when it is there (nbformat's and jupyter-events'
# jsonschema[format-nongpl] bring it), and that import builds ~35 Earley parsers: about 2.4 s of
# CPU in every process that imports ray, drivers, workers and the dashboard agent alike, which
# Ray's raylet gives a fixed 15 s to start (ray-project/ray#65983). Nothing here validates IRIs,
# and jsonschema runs without it, so the install removes it (the image's does too).
SLOW_UNUSED_PACKAGES := rfc3987-syntax
RESULTS ?= results
EXPERIMENT ?= trainer/ray_maddpg/presets/quick.yaml
PYTEST_ARGS ?=
# Test files run in this many pytest processes, each file whole in one (its module fixtures,
# such as the cluster, are built once). The e2e files mostly wait, so 2 suit a 2-core machine.
TEST_WORKERS ?= 2

.PHONY: install train test chromium bench reproduce peer-venv lint chart-lint image lock clean

install: $(STAMP)

$(STAMP): requirements.lock trainer/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c requirements.lock -e 'trainer[dev]'
	$(BIN)/python -m pip uninstall --quiet --disable-pip-version-check -y $(SLOW_UNUSED_PACKAGES)
	@touch $@

$(CHECKOV):
	@test -x $(VENV)/checkov/bin/python || $(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/python -m pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)

## train: run the quick experiment on an embedded local Ray (results under ./results)
train: $(STAMP)
	$(BIN)/ray-maddpg train --config $(EXPERIMENT) --results-dir $(RESULTS)

## test: the whole pytest suite (unit, chart, learning and end-to-end cluster tests)
# PYTHONFAULTHANDLER: a crash, also one at interpreter exit after the summary (seen once on
# 2026-12-01, exit 139 after 667 passed), prints every thread's stack instead of a bare signal.
# The learning module trains two runs at once in its own Ray, which fills both cores; beside the
# end-to-end files it starved their `ray start` (raylet timeouts in one CI run), so it runs after
# them, alone; it runs also when the first step fails, and either failing fails the target.
# With PYTEST_ARGS (a chosen subset) it is one pytest call as given.
PYTEST := PYTHONFAULTHANDLER=1 CHECKOV=$(CHECKOV) $(BIN)/python -m pytest
test: $(STAMP) $(CHECKOV) chromium
ifeq ($(strip $(PYTEST_ARGS)),)
	$(PYTEST) -n $(TEST_WORKERS) --dist loadfile -m "not learning"; status=$$?; \
	$(PYTEST) -m learning || status=$$?; \
	exit $$status
else
	$(PYTEST) -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)
endif

# The cluster test screenshots TensorBoard and JupyterLab with Debian's headless Chromium (not a pip
# package). Installed once with apt (CI runs as root); a second call finds it and does nothing.
chromium:
	@command -v chromium >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

## bench: throughput benchmarks; prints ratios and writes bench/results/*.json
bench: $(STAMP)
	$(BIN)/python bench/throughput.py

## reproduce: the paper reproduction (hours at the paper's budget), e.g. REPRODUCE_ARGS="--steps 300000"
REPRODUCE_ARGS ?=
reproduce: $(STAMP)
	$(BIN)/python bench/reproduce.py $(REPRODUCE_ARGS)

## peer-venv: AgileRL in its own venv, for the peer control (bench/peer_agilerl.py, docs/results.md)
peer-venv: $(PEER_VENV)/.installed

$(PEER_VENV)/.installed:
	@test -x $(PEER_VENV)/bin/python || $(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/python -m pip install --quiet --disable-pip-version-check $(PEER_PACKAGES)
	@touch $@

lint: $(STAMP)
	$(BIN)/ruff check trainer tests bench scripts image charts
	$(BIN)/ruff format --check trainer tests bench scripts image charts

chart-lint: $(STAMP)
	$(BIN)/python scripts/chart_lint.py charts/ray-maddpg

## image: build the training image with docker, podman or buildah
image:
	bash image/build.sh

## lock: re-resolve requirements.lock from the current .venv (after changing dependencies)
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable --disable-pip-version-check \
	  | sed -e 's/+cpu$$//' | grep -v '^ray-maddpg' > requirements.lock.new
	@{ echo '# Exact versions for local, CI and image installs (pip -c). Regenerate with `make lock`.'; \
	   echo '# torch is pinned without a local tag: the CPU wheel locally, the CUDA wheel in the image.'; \
	   cat requirements.lock.new; } > requirements.lock && rm requirements.lock.new

clean:
	rm -rf $(VENV) $(PEER_VENV) .pytest_cache .ruff_cache trainer/*.egg-info
