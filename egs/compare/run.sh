#!/usr/bin/env bash
# Comparison harness: several recipes or config variants on one request set with one seed set, one report.
# Stages: 0 data + request set, 1 extract + train (once per model), 2 generate, 3 evaluate, 4 report.
# Variants live in the config (conf/default.yaml); adding one needs no code. See docs/compare.md.
#   bash egs/compare/run.sh                                  # the defaults (about 10-15 min on 2 cores)
#   bash egs/compare/run.sh --stage 4                        # rewrite the report only
#   bash egs/compare/run.sh requests.count=1 train.max_steps=20   # compare-config / model overrides
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
. ../_common/stages.sh

stage=0
stop_stage=4
conf=conf/default.yaml
exp=exp/default
data=""             # a folder of your songs; empty = the embedded chorale set (corpus: in the config)
_recipe_options="stage stop_stage conf exp data"
. ../_common/parse_options.sh

python=$(toolkit_python)
export HF_HUB_OFFLINE=1
data_args=()
if [ -n "$data" ]; then data_args=(--data "$data"); fi
log "comparing the variants of $conf into $exp (stages $stage..$stop_stage)"
"$python" -m toolkit.bin.compare --conf "$conf" --exp "$exp" --stage "$stage" --stop-stage "$stop_stage" \
  ${data_args[@]+"${data_args[@]}"} ${overrides[@]+"${overrides[@]}"}
log "done: see $exp/report/report.md"
