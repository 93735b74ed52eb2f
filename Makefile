# The two doors: `make demo` runs the flagship recipe on the embedded data, `make test` runs the tests.
# Both bootstrap what they need first (idempotent: seconds when nothing changed).
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1

.PHONY: install test demo bench lint clean-exp

install:
	bash scripts/bootstrap.sh

test: install
	$(PY) -m pytest -q

demo: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash egs/diffrhythm/run.sh

bench: install
	$(PY) benchmarks/bench_dit.py
	$(PY) benchmarks/bench_codec.py

lint: install
	$(PY) -m compileall -q toolkit tests benchmarks

clean-exp:
	rm -rf egs/*/exp
