# soda-jax: `make demo` and `make test` each set themselves up from a fresh clone.
PYTHON ?= python3.11
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
SYSTEM_TOOLS = flite espeak-ng sox dot chromium
DEMO_PREFIX ?= $(CURDIR)/demo-output
PYTEST_ARGS ?=

.PHONY: setup system-deps demo demo-full test test-all lint bench clean

setup: $(STAMP) system-deps

# Reinstall whenever the declared dependencies change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test,tpu-aot]"
	$(PY) -m pip install --quiet --no-deps -c constraints.txt "pytest-audioeval==0.1.3"  # natural test clips; its deps are for its HTTP plugin
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

# pytest exits 5 when it collected no tests: that is a failure here, never a silent pass.
test: setup
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

test-all: setup
	$(MAKE) test PYTEST_ARGS="-m ''"

# ruff (rules in pyproject.toml) on the whole tree; mypy on src/ at the level it passes.
lint: setup
	$(VENV)/bin/ruff check src tests experiments benchmarks
	$(VENV)/bin/mypy

bench: setup
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done


clean:
	rm -rf $(DEMO_PREFIX) .pytest_cache
