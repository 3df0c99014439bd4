# Two commands from a fresh clone: `make demo` and `make test`. Everything else is a helper.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast check lint typecheck install bench system-deps clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

# Debian packages the tests run: the dashboard tests drive chromium through its chromedriver;
# the replica test puts nginx in front of three servers (it starts its own nginx, on a free
# loopback port, and never uses the system's service). nginx lives in /usr/sbin.
# apt waits up to 5 minutes for a lock another process holds (a first run once failed on it).
APT := apt-get -o DPkg::Lock::Timeout=300
SYSTEM_PACKAGES := chromium chromium-driver nginx
system-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && \
		(command -v nginx >/dev/null || test -x /usr/sbin/nginx) || \
		$(APT) install -y -qq $(SYSTEM_PACKAGES) >/dev/null || \
		($(APT) update -qq && $(APT) install -y -qq $(SYSTEM_PACKAGES) >/dev/null)

test: $(STAMP) system-deps
	$(PY) -m pytest -q -p no:cacheprovider -n 2 --cov --cov-report=term --durations=25

# The edit loop: unit and in-process tests, none that starts a process of its own.
test-fast: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -n 2 -m "not slow"

# The serving benchmark needs wrk, a C load generator from Debian.
bench: $(STAMP)
	command -v wrk >/dev/null || $(APT) install -y wrk
	$(PY) benchmarks/predict_overhead.py
	$(PY) benchmarks/serving.py --seconds 10

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests examples benchmarks
	$(VENV)/bin/ruff format --check src tests examples benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) .demo build dist .pytest_cache .mypy_cache .ruff_cache .coverage
