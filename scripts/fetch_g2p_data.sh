#!/usr/bin/env bash
# Fetch the Mandarin data files of the lyrics tokenizer (idempotent; seconds when already present).
# They come from the PyPI sdist maskgct==0.0.19 (never installed); see docs/lyrics.md.
# Target: $TOOLKIT_G2P_DIR, default ~/.cache/toolkit/g2p. Extra arguments go to the fetcher
# (--dir DIR, --sdist TARBALL, --force).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
exec "$VENV/bin/python" -m toolkit.conditioners.g2p.fetch "$@"
