#!/usr/bin/env bash
# Stable Audio recipe: 0 data, 1 extract, 2 train, 3 generate, 4 evaluate + report (the stages of DiffRhythm's).
# With no arguments every stage runs on the embedded Bach-chorale set with text prompts made from each piece's
# tags (ensemble, tempo, key) and the weight-free defaults (a small trainable text encoder instead of T5).
#   bash egs/stable_audio/run.sh --stage 2 --stop_stage 3 backbone.depth=6 train.max_steps=900
#   bash egs/stable_audio/run.sh --t5 /path/to/t5-base               (train with the T5 text encoder)
#   bash egs/stable_audio/run.sh --pretrained /path/to/stable-audio-open-1.0 --t5 /path/to/t5-base --stage 3
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
. ../_common/stages.sh

stage=0
stop_stage=4
conf=conf/default.yaml
exp=exp/default
data=""             # a folder of your songs (tags give the prompts); empty = the embedded chorale set
pretrained=""       # a folder with a published model_config.json + model.safetensors: skips training
t5=""               # a local T5 folder (t5-base): the text encoder for training, or the published model's
num_pieces=20       # size of the embedded set (5 pieces per ensemble)
valid_fraction=0.2  # share of the songs held out for validation (4 of the 20 embedded pieces)
piece_seconds=30    # each embedded piece is cut at a phrase end by then
chorales_dir=data/chorales   # where the embedded set is built (cached)
num_songs=8         # outputs generated for the evaluation: the validation songs first, then training songs
song_seconds=11     # seconds_total of each request (the output is the piece's first song_seconds)
_recipe_options="stage stop_stage conf exp data pretrained t5 num_pieces valid_fraction piece_seconds chorales_dir num_songs song_seconds"
. ../_common/parse_options.sh

python=$(toolkit_python)
export HF_HUB_OFFLINE=1
mkdir -p "$exp"
text_overrides=()
if [ -n "$t5" ] && [ -z "$pretrained" ]; then  # T5 tokens instead of the learned text encoder
  text_overrides=("conditions.prompt.conditioner={type: t5_text, model_path: $t5, output_dim: 128, t5_dtype: float32}")
fi
all_overrides=(${text_overrides[@]+"${text_overrides[@]}"} ${overrides[@]+"${overrides[@]}"})

if stage_enabled 0; then
  songs=$data
  if [ -z "$songs" ]; then
    songs=$chorales_dir
    log "stage 0: building the embedded chorale set ($num_pieces pieces) in $songs"
    "$python" -m toolkit.bin.make_chorales --out "$songs" --num-pieces "$num_pieces" --max-seconds "$piece_seconds"
  fi
  log "stage 0: preparing manifests from $songs, prompts from their tags"
  "$python" -m toolkit.bin.prepare --data "$songs" --out "$exp/data" --valid-fraction "$valid_fraction"
  "$python" local/make_prompts.py --data "$exp/data" --songs "$songs"
fi

if stage_enabled 1; then
  log "stage 1: extracting latents and prompt tokens"
  "$python" -m toolkit.bin.extract --config "$conf" --manifest-dir "$exp/data" --out "$exp/features" \
    ${all_overrides[@]+"${all_overrides[@]}"}
fi

if stage_enabled 2; then
  if [ -n "$pretrained" ]; then
    log "stage 2: skipped (--pretrained given)"
  else
    log "stage 2: training"
    "$python" -m toolkit.bin.train --config "$conf" --exp "$exp" --features "$exp/features" \
      ${all_overrides[@]+"${all_overrides[@]}"}
  fi
fi

if stage_enabled 3; then
  gen_overrides=("${overrides[@]}")
  if [ -n "$pretrained" ]; then
    model_args=(--pretrained "$pretrained")
    if [ -n "$t5" ]; then model_args+=(--t5 "$t5"); fi
  else
    model_args=(--ckpt "$exp/checkpoints/last.pt")
    gen_overrides=("$(sampler_override "$python" "$conf" "${overrides[@]}")" "${overrides[@]}")
  fi
  "$python" local/make_requests.py --manifest "$exp/data/valid.jsonl" --manifest "$exp/data/train.jsonl" \
    --out "$exp/requests.jsonl" --seconds "$song_seconds" --limit "$num_songs"
  log "stage 3: generating (with the prompt, then with it dropped for comparison)"
  "$python" -m toolkit.bin.generate stable_audio "${model_args[@]}" --requests "$exp/requests.jsonl" \
    --out "$exp/songs/full" --skip-existing "${gen_overrides[@]}"
  "$python" -m toolkit.bin.generate stable_audio "${model_args[@]}" --requests "$exp/requests.jsonl" \
    --out "$exp/songs/dropped" --skip-existing --drop-conditions "${gen_overrides[@]}"
fi

if stage_enabled 4; then
  log "stage 4: evaluating and writing the report"
  "$python" -m toolkit.bin.evaluate songs --songs "$exp/songs" --manifest "$exp/data/valid.jsonl" \
    --manifest "$exp/data/train.jsonl" --out "$exp/report"
  "$python" -m toolkit.bin.evaluate report --exp "$exp"
fi
log "done: see $exp"
