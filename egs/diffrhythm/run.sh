#!/usr/bin/env bash
# DiffRhythm recipe: 0 data, 1 extract, 2 train, 3 generate, 4 evaluate + report.
# With no arguments every stage runs on the embedded Bach-chorale set with the weight-free defaults.
#   bash egs/diffrhythm/run.sh --stage 2 --stop_stage 3 backbone.depth=4 train.max_steps=200
#   bash egs/diffrhythm/run.sh --pretrained /path/to/published --variant base --stage 3
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
. ../_common/stages.sh

stage=0
stop_stage=4
conf=conf/default.yaml
exp=exp/default
data=""             # a folder of your songs; empty = the embedded chorale set
pretrained=""       # a folder with the published DiT, vae_model.pt and MuQ-MuLan: skips training
variant=""          # with --pretrained: base | full (v1.0) | v1.2-full; base and v1.0 full look alike, so name them
num_pieces=12       # size of the embedded set
valid_fraction=0.2  # share of the songs held out for validation (2 of the 12 embedded pieces)
piece_seconds=30    # each embedded piece is cut at a phrase end by then
chorales_dir=data/chorales   # where the embedded set is built (cached; shared by experiments)
num_songs=8         # songs generated for the evaluation: the validation songs first, then training songs
song_seconds=11     # length of each generated song
_recipe_options="stage stop_stage conf exp data pretrained variant num_pieces valid_fraction piece_seconds chorales_dir num_songs song_seconds"
. ../_common/parse_options.sh

python=$(toolkit_python)
export HF_HUB_OFFLINE=1
mkdir -p "$exp"

require_cli() {  # stage number, stage name, CLI module
  "$python" -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('toolkit.bin.$3') is None)" \
    || not_available "$1" "$2"
}

if stage_enabled 0; then
  require_cli 0 data prepare
  songs=$data
  if [ -z "$songs" ]; then
    songs=$chorales_dir
    log "stage 0: building the embedded chorale set ($num_pieces pieces) in $songs"
    "$python" -m toolkit.bin.make_chorales --out "$songs" --num-pieces "$num_pieces" --max-seconds "$piece_seconds"
  fi
  log "stage 0: preparing manifests from $songs"
  "$python" -m toolkit.bin.prepare --data "$songs" --out "$exp/data" --valid-fraction "$valid_fraction"
fi

if stage_enabled 1; then
  require_cli 1 extract extract
  log "stage 1: extracting latents, style embeddings and lyric tokens"
  "$python" -m toolkit.bin.extract --config "$conf" --manifest-dir "$exp/data" --out "$exp/features" "${overrides[@]}"
fi

if stage_enabled 2; then
  if [ -n "$pretrained" ]; then
    log "stage 2: skipped (--pretrained given)"
  else
    require_cli 2 train train
    log "stage 2: training"
    "$python" -m toolkit.bin.train --config "$conf" --exp "$exp" --features "$exp/features" "${overrides[@]}"
  fi
fi

if stage_enabled 3; then
  require_cli 3 generate generate
  if [ -n "$pretrained" ]; then
    model_args=(--pretrained "$pretrained")
    if [ -n "$variant" ]; then model_args+=(--variant "$variant"); fi
  else
    model_args=(--ckpt "$exp/checkpoints/last.pt")
  fi
  "$python" local/make_requests.py --manifest "$exp/data/valid.jsonl" --manifest "$exp/data/train.jsonl" --out "$exp/requests.jsonl" \
    --seconds "$song_seconds" --limit "$num_songs"
  log "stage 3: generating songs (conditioned, then with lyrics and style dropped for comparison)"
  "$python" -m toolkit.bin.generate "${model_args[@]}" --requests "$exp/requests.jsonl" --out "$exp/songs/full" \
    --skip-existing "${overrides[@]}"
  "$python" -m toolkit.bin.generate "${model_args[@]}" --requests "$exp/requests.jsonl" --out "$exp/songs/dropped" \
    --skip-existing --drop-conditions "${overrides[@]}"
fi

if stage_enabled 4; then
  require_cli 4 evaluate evaluate
  log "stage 4: evaluating and writing the report"
  "$python" -m toolkit.bin.evaluate songs --songs "$exp/songs" --manifest "$exp/data/valid.jsonl" \
    --manifest "$exp/data/train.jsonl" --out "$exp/report"
  "$python" -m toolkit.bin.evaluate report --exp "$exp"
fi
log "done: see $exp"
