# Sourced by recipe scripts after they set defaults for their option variables.
# `--name value` / `--name=value` sets the shell variable `name` (dashes become underscores) only if
# the script declared it; `key=value` arguments are collected into the array `overrides`, which
# the script passes to every Python stage; `--help` prints the declared options.
overrides=()
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      echo "usage: $0 [--option value ...] [key=value config overrides ...]"
      echo "options (current values):"
      for _v in ${_recipe_options:-}; do printf '  --%s %s\n' "${_v}" "${!_v}"; done
      exit 0 ;;
    --*=*)
      _name=${1%%=*}; _name=${_name#--}; _name=${_name//-/_}; _value=${1#*=}; shift ;;
    --*)
      _name=${1#--}; _name=${_name//-/_}
      if [ $# -lt 2 ]; then echo "$0: option --${_name} needs a value" >&2; exit 2; fi
      _value=$2; shift 2 ;;
    *=*)
      overrides+=("$1"); shift; continue ;;
    *)
      echo "$0: unexpected argument '$1' (options look like --name value, overrides like key=value)" >&2; exit 2 ;;
  esac
  if [[ " ${_recipe_options:-} " != *" ${_name} "* ]]; then
    echo "$0: unknown option --${_name//_/-}; known: ${_recipe_options:-}" >&2; exit 2
  fi
  printf -v "${_name}" '%s' "${_value}"
done
unset _name _value _v
