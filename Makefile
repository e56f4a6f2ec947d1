# soda-jax: `make demo` and `make test` each set themselves up from a fresh clone.
PYTHON ?= python3.11
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
SYSTEM_TOOLS = flite espeak-ng sox dot chromium
DEMO_PREFIX ?= $(CURDIR)/demo-output
PYTEST_ARGS ?=
# pytest-xdist workers for `make test`; each takes whole test files (a module's fixtures are built once).
# One pytest process keeps two cores ~60% busy (tracing, Ray start-up, I/O are single-threaded); two
# workers ran the suite 1.26-1.32x faster here (docs/development.md). TEST_WORKERS=0: one process.
TEST_WORKERS ?= 2
# The project's extras to install (pyproject.toml): `make venv EXTRAS=tpu,cluster` on the cluster's hosts (infra/).
EXTRAS ?= test,tpu-aot
# Every pin is on public PyPI, whose Linux torch wheel is the CUDA build (GBs). For a CPU-only torch:
#   make setup TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# pip then also searches that index and takes its 2.13.0+cpu (a local label sorts after 2.13.0).
TORCH_INDEX_URL ?=
PIP_INDEX_OPTIONS = $(if $(TORCH_INDEX_URL),--extra-index-url $(TORCH_INDEX_URL))
comma := ,

.PHONY: setup venv system-deps demo demo-full demo-learn study-mini test test-all lint bench clean

setup: $(STAMP) system-deps

# The Python environment alone, without the Debian packages.
venv: $(STAMP)

# Reinstall whenever the declared dependencies change. With the test extra, pytest-audioeval's natural
# test clips too, without its deps (they serve its HTTP plugin).
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet $(PIP_INDEX_OPTIONS) -c constraints.txt -e ".[$(EXTRAS)]"
	$(if $(filter test,$(subst $(comma), ,$(EXTRAS))),$(PY) -m pip install --quiet --no-deps -c constraints.txt "pytest-audioeval==0.1.3")
	touch $@

# Speech synthesis for the demo corpus and the audio tests; Graphviz (the dashboard's DAG) and
# headless Chromium (the dashboard's browser test, driven by Playwright). Debian packages.
system-deps:
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages for:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq flite espeak-ng sox libsox-fmt-mp3 graphviz chromium >/dev/null; \
	fi

demo: setup
	$(PY) experiments/demo.py --prefix $(DEMO_PREFIX)

demo-full: setup
	$(PY) experiments/demo.py --prefix $(DEMO_PREFIX) --full

# A model that learns, on CPU (docs/demo.md): spoken commands -> a model that transcribes combinations
# of words it never heard. MIMI=DIR: a local pretrained Mimi instead of the random tiny one.
MIMI ?=
demo-learn: setup
	$(PY) experiments/demo_learn.py --prefix $(DEMO_PREFIX) $(if $(MIMI),--mimi $(MIMI))

# SODA's text-share study in miniature (docs/design-studies.md): five tiny models, 0-100% text.
study-mini: setup
	$(PY) experiments/study_text_share_mini.py --prefix $(DEMO_PREFIX)

# pytest exits 5 when it collected no tests: that is a failure here, never a silent pass.
test: setup
	$(PY) -m pytest $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadfile) $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

test-all: setup
	$(MAKE) test PYTEST_ARGS="-m ''"

# ruff (rules in pyproject.toml) on the whole tree; mypy on src/ at the level it passes.
lint: setup
	$(VENV)/bin/ruff format --check src tests experiments benchmarks infra
	$(VENV)/bin/ruff check src tests experiments benchmarks infra
	$(VENV)/bin/mypy

bench: setup
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done


clean:
	rm -rf $(DEMO_PREFIX) .pytest_cache
