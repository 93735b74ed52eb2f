# Stage helpers for recipe scripts: `if stage_enabled N; then ...; fi` runs stage N when
# stage <= N <= stop_stage; `log` prints with a timestamp; `not_available` ends a stage whose
# implementation has not landed yet.
stage_enabled() {
  [ "$1" -ge "${stage}" ] && [ "$1" -le "${stop_stage}" ]
}

log() {
  echo "[$(date +%H:%M:%S)] $*"
}

not_available() {
  echo "$0: stage $1 ($2) is not available yet in this version of the toolkit" >&2
  exit 3
}

# The python that has the toolkit installed: the repo's .venv when present, else python3 on PATH.
toolkit_python() {
  local root
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  if [ -x "$root/.venv/bin/python" ]; then echo "$root/.venv/bin/python"; else echo python3; fi
}

# The conf's sampler as one override (`sampler={...}`) for generating from a checkpoint: the conf's settings
# win over the ones saved in the checkpoint, so editing the sampler and rerunning the generation stage remakes
# the outputs (--skip-existing compares the config each manifest records).
sampler_override() {  # python conf [key=value ...]
  local python=$1 conf=$2
  shift 2
  echo "sampler=$("$python" -m toolkit.bin.inspect config "$conf" sampler "$@")"
}
