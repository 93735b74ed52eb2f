#!/usr/bin/env bash
# Comparison harness: several recipes, backbones or config variants on one task (the same songs, seconds and
# seeds, each recipe reading them in its own request format), one evaluator, one report.
# Stages: 0 data + requests, 1 extract + train (once per model), 2 generate, 3 evaluate, 4 report.
# Variants live in the config (conf/default.yaml); adding one needs no code. See docs/compare.md.
#   bash egs/compare/run.sh                                  # recipes side by side (at most 15 min on 2 cores)
#   bash egs/compare/run.sh --conf conf/speech.yaml --exp exp/speech   # F5-TTS settings on the speech set
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
