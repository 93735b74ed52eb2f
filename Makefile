# The two doors: `make demo` runs the flagship recipe on the embedded data, `make test` runs the tests.
# Both bootstrap what they need first (idempotent: seconds when nothing changed).
VENV ?= .venv
PY := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1

.PHONY: install test demo app bench lint clean-exp

install:
	bash scripts/bootstrap.sh

test: install
	$(PY) -m pytest -q

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
	$(PY) -m compileall -q toolkit tests benchmarks

clean-exp:
	rm -rf egs/*/exp
