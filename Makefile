# The two doors: `make demo` runs the flagship recipe on the embedded data, `make test` runs the tests.
# Both bootstrap what they need first (idempotent: seconds when nothing changed).
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1

.PHONY: install test test-fast demo app bench lint clean-exp
LINTED := toolkit tests benchmarks egs scripts

install:
	bash scripts/bootstrap.sh

# Everything: ruff, then every test (parity, slow, end-to-end and multi-process included).
test: install
	$(VENV)/bin/ruff check $(LINTED)
	$(PY) -m pytest -q

# Daily work: ruff, then all but the slow, end-to-end and multi-process tiers (under 2 minutes on 2 cores).
test-fast: install
	$(VENV)/bin/ruff check $(LINTED)
	$(PY) -m pytest -q -m "not slow and not e2e and not ddp"

demo: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash egs/diffrhythm/run.sh

# The web app on the demo's checkpoint (after `make demo`): http://127.0.0.1:7860 (docs/app.md).
# APP_CKPT=... serves another checkpoint; APP_ARGS="--port 8000 --compare DIR" passes more options.
APP_CKPT ?= egs/diffrhythm/exp/default/checkpoints/last.pt
APP_ARGS ?=
app: install
	@test -f "$(APP_CKPT)" || { echo "make app: $(APP_CKPT) does not exist: run make demo first (or make app APP_CKPT=FILE)"; exit 2; }
	$(PY) -m toolkit.bin.app --ckpt "$(APP_CKPT)" --out egs/diffrhythm/exp/default/app $(APP_ARGS)

bench: install
	$(PY) benchmarks/bench_dit.py
	$(PY) benchmarks/bench_codec.py

lint: install
	$(VENV)/bin/ruff check $(LINTED)

clean-exp:
	rm -rf egs/*/exp
