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
num_pieces=20       # size of the embedded set
valid_fraction=0.4  # share of the songs held out for validation (8 of the 20 embedded pieces, all four ensembles)
piece_seconds=30    # each embedded piece is cut at a phrase end by then
chorales_dir=data/chorales   # where the embedded set is built (cached; shared by experiments)
num_songs=12        # songs generated for the evaluation: the held-out (validation) songs first, then training songs
song_seconds=11     # length of each generated song
eval_embedding=descriptors  # the space style is scored in: descriptors (weight-free, shares no feature with the
                            # style conditioner), or local weights of a learned embedder: clap:DIR, mulan:DIR
_recipe_options="stage stop_stage conf exp data pretrained variant num_pieces valid_fraction piece_seconds chorales_dir num_songs song_seconds eval_embedding"
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
  gen_overrides=("${overrides[@]}")
  require_cli 3 generate generate
  if [ -n "$pretrained" ]; then
    model_args=(--pretrained "$pretrained")
    if [ -n "$variant" ]; then model_args+=(--variant "$variant"); fi
  else
    model_args=(--ckpt "$exp/checkpoints/last.pt")
    gen_overrides=("$(sampler_override "$python" "$conf" "${overrides[@]}")" "${overrides[@]}")
  fi
  manifests=(--manifest "$exp/data/valid.jsonl" --manifest "$exp/data/train.jsonl")
  "$python" local/make_requests.py "${manifests[@]}" --out "$exp/requests.jsonl" --seconds "$song_seconds" \
    --limit "$num_songs"
  "$python" local/make_requests.py "${manifests[@]}" --out "$exp/requests_mismatched.jsonl" --seconds "$song_seconds" \
    --limit "$num_songs" --mismatch
  log "stage 3: generating songs (conditioned; with lyrics and style dropped; with another song's LRC)"
  "$python" -m toolkit.bin.generate "${model_args[@]}" --requests "$exp/requests.jsonl" --out "$exp/songs/full" \
    --skip-existing "${gen_overrides[@]}"
  "$python" -m toolkit.bin.generate "${model_args[@]}" --requests "$exp/requests.jsonl" --out "$exp/songs/dropped" \
    --skip-existing --drop-conditions "${gen_overrides[@]}"
  if [ -s "$exp/requests_mismatched.jsonl" ]; then
    "$python" -m toolkit.bin.generate "${model_args[@]}" --requests "$exp/requests_mismatched.jsonl" \
      --out "$exp/songs/mismatched" --skip-existing "${gen_overrides[@]}"
  fi
  if [ -z "$pretrained" ]; then  # the codec ceiling: the references themselves, through the codec
    "$python" local/reconstruct_references.py --config "$conf" --requests "$exp/requests.jsonl" \
      --out "$exp/songs/reconstructed" "${overrides[@]}"
  fi
fi

if stage_enabled 4; then
  require_cli 4 evaluate evaluate
  log "stage 4: evaluating and writing the report"
  # Style is scored in a space the model was not conditioned on; the conditioner's own space (style_features,
  # weight-free) is reported beside it as self-consistency. Held-out pieces get their own columns.
  self_space=()  # the published model's conditioner is MuQ-MuLan: give its weights as --eval_embedding to compare
  if [ -z "$pretrained" ] && [ "$("$python" -m toolkit.bin.inspect config "$conf" conditions.style.conditioner \
      "${overrides[@]}")" = style_features ]; then
    self_space=(--self-consistency features)
  fi
  "$python" -m toolkit.bin.evaluate songs --songs "$exp/songs" --manifest "$exp/data/valid.jsonl" \
    --manifest "$exp/data/train.jsonl" --held-out "$exp/data/valid.jsonl" --embedding "$eval_embedding" \
    "${self_space[@]}" --out "$exp/report"
  "$python" -m toolkit.bin.evaluate report --exp "$exp"
fi
log "done: see $exp"
