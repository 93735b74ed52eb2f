#!/usr/bin/env bash
# F5-TTS recipe: 0 data, 1 extract, 2 train, 3 generate, 4 evaluate + report (the stages of DiffRhythm's).
# With no arguments every stage runs on the embedded espeak-ng speech set with the weight-free defaults.
#   bash egs/f5tts/run.sh --stage 2 --stop_stage 3 backbone.depth=6 train.max_steps=600
#   bash egs/f5tts/run.sh --pretrained /path/to/published --stage 3     (F5TTS_v1_Base + Vocos, docs/f5tts.md)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
. ../_common/stages.sh

stage=0
stop_stage=4
conf=conf/default.yaml
exp=exp/default
data=""             # a folder of your utterances (wav + same-name .txt transcript); empty = the embedded set
pretrained=""       # a folder with the published F5-TTS checkpoint, vocab.txt and Vocos: skips training
num_utterances=32   # size of the embedded set (DiffRhythm: --num_pieces)
num_requests=4      # utterances generated for the evaluation (DiffRhythm: --num_songs)
_recipe_options="stage stop_stage conf exp data pretrained num_utterances num_requests"
. ../_common/parse_options.sh

python=$(toolkit_python)
export HF_HUB_OFFLINE=1
# torch uses every core by default (2 threads: 1.55x the steps per second of 1 on an idle 2-core machine).
# On a CPU busy with other jobs, OMP_NUM_THREADS=1 can be several times faster (docs/f5tts.md).
mkdir -p "$exp"

if stage_enabled 0; then
  utterances=$data
  if [ -z "$utterances" ]; then
    utterances=data/speech
    log "stage 0: building the embedded speech set ($num_utterances utterances, espeak-ng) in $utterances"
    "$python" -m toolkit.bin.make_speech_set --out "$utterances" --num-utterances "$num_utterances"
  fi
  log "stage 0: preparing manifests from $utterances"
  "$python" -m toolkit.bin.prepare --data "$utterances" --out "$exp/data" --valid-fraction 0.15 --quiet
fi

if stage_enabled 1; then
  log "stage 1: extracting mel frames and transcript tokens"
  "$python" -m toolkit.bin.extract --config "$conf" --manifest-dir "$exp/data" --out "$exp/features" "${overrides[@]}"
fi

if stage_enabled 2; then
  if [ -n "$pretrained" ]; then
    log "stage 2: skipped (--pretrained given)"
  else
    log "stage 2: training"
    "$python" -m toolkit.bin.train --config "$conf" --exp "$exp" --features "$exp/features" "${overrides[@]}"
  fi
fi

if stage_enabled 3; then
  gen_overrides=("${overrides[@]}")
  if [ -n "$pretrained" ]; then
    model_args=(--pretrained "$pretrained")
  else
    model_args=(--ckpt "$exp/checkpoints/last.pt")
    gen_overrides=("$(sampler_override "$python" "$conf" "${overrides[@]}")" "${overrides[@]}")
  fi
  "$python" local/make_requests.py --targets "$exp/data/valid.jsonl" --targets "$exp/data/train.jsonl" \
    --prompts "$exp/data/train.jsonl" --out "$exp/requests.jsonl" --limit "$num_requests"
  log "stage 3: generating speech (conditioned, then with text and prompt dropped for comparison)"
  "$python" -m toolkit.bin.generate f5tts "${model_args[@]}" --requests "$exp/requests.jsonl" --out "$exp/songs/full" \
    "${gen_overrides[@]}"
  "$python" -m toolkit.bin.generate f5tts "${model_args[@]}" --requests "$exp/requests.jsonl" \
    --out "$exp/songs/dropped" --drop-conditions "${gen_overrides[@]}"
fi

if stage_enabled 4; then
  log "stage 4: evaluating and writing the report"
  "$python" -m toolkit.bin.evaluate songs --songs "$exp/songs" --manifest "$exp/data/valid.jsonl" \
    --manifest "$exp/data/train.jsonl" --out "$exp/report"
  "$python" -m toolkit.bin.evaluate report --exp "$exp"
fi
log "done: see $exp"
