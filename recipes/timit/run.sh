#!/usr/bin/env bash
# TIMIT recipe: 4x320 BiLSTM-CTC on 48 phones, phone error rate (PER) after folding to 39 phones.
#
# Stages (each one `asr` command; --stage N --stop-stage M runs a range):
#   1 prepare   TIMIT_DIR/{TRAIN,TEST} -> data/manifests/timit_cuts_{train,dev,test}.jsonl.gz, text_*, utt2spk_*
#               (train: TRAIN without SA sentences; dev: 50 TEST speakers; test: 24-speaker core test set)
#   2 train     manifests + $config -> $exp_dir/checkpoints/epoch-*.pt, log.csv (resumes if killed)
#   3 average   last $avg epoch checkpoints -> $exp_dir/model.pt
#   4 decode    model.pt + dev and test cuts -> $exp_dir/decode/hyp-{dev,test}-{greedy,beam}.{txt,jsonl}
#               (beam: lexicon-free, no LM; the JSONL "words" are the phones with their times)
#   5 score     hypotheses vs text_{dev,test}, both folded to 39 phones (Lee & Hon 1989)
#               -> $exp_dir/decode/scores-{dev,test}/wer-summary.txt (%PER lines), errs-*.txt
#
# Data: TIMIT is licensed by the LDC (LDC93S1), so nothing is downloaded: --data-dir DIR (or
# $TIMIT_DIR) must point at the corpus, laid out as released (upper or lower case):
#   DIR/TRAIN/DR1/FCJF0/SI1027.{WAV,PHN,WRD,TXT} ... DIR/TEST/DR8/...   (or DIR/TIMIT/TRAIN/...)
# --phones 48|61|39 picks the training labels (default 48); --dev-speakers/--test-speakers FILE
# replace the standard speaker lists (for a partial copy of the corpus).
# Outputs (data/, exp/) go to the current directory: run it from recipes/timit.
set -euo pipefail
recipe_dir=$(cd "$(dirname "$0")" && pwd)

stage=1                                  # first stage to run
stop_stage=5                             # last stage to run
data_dir=${TIMIT_DIR:-}                  # the TIMIT corpus (required for stage 1)
config=$recipe_dir/../../conf/timit.yaml # training config (YAML)
exp_dir=exp                              # checkpoints, model.pt, decode/
avg=5                                    # epoch checkpoints averaged into model.pt
phones=48                                # training labels: 48, 61 or 39 phones
dev_speakers=                            # file of dev speakers (default: the standard 50)
test_speakers=                           # file of test speakers (default: the 24-speaker core test set)
. "$recipe_dir/../parse_options.sh"

. "$recipe_dir/../stage_times.sh"
manifests=data/manifests

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  if [ -z "$data_dir" ]; then
    echo "$0: TIMIT cannot be downloaded (LDC licence): give --data-dir DIR or set TIMIT_DIR" >&2
    exit 2
  fi
  stage_begin 1 "prepare manifests from $data_dir ($phones phones)"
  lists=()
  [ -z "$dev_speakers" ] || lists+=(--dev-speakers "$dev_speakers")
  [ -z "$test_speakers" ] || lists+=(--test-speakers "$test_speakers")
  [ -f $manifests/.done ] || { asr prepare timit "$data_dir" $manifests --phones "$phones" ${lists[@]+"${lists[@]}"} &&
    touch $manifests/.done; }
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  stage_begin 2 "train with $config into $exp_dir"
  asr train --config "$config" --train $manifests/timit_cuts_train.jsonl.gz \
    --dev $manifests/timit_cuts_dev.jsonl.gz --exp-dir "$exp_dir"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  stage_begin 3 "average the last $avg epoch checkpoints"
  asr average "$exp_dir" --last "$avg" --out "$exp_dir/model.pt"
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  for part in dev test; do
    stage_begin 4 "decode $part (greedy and beam)"
    asr decode "$exp_dir/model.pt" $manifests/timit_cuts_$part.jsonl.gz --name $part \
      --method greedy beam --out-dir "$exp_dir/decode"
  done
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  for part in dev test; do
    stage_begin 5 "score $part, PER on 39 phones"
    asr score --units phone --fold timit39 --ref $manifests/text_$part --utt2spk $manifests/utt2spk_$part \
      --out-dir "$exp_dir/decode/scores-$part" \
      --hyp "$exp_dir/decode/hyp-$part-greedy.txt" "$exp_dir/decode/hyp-$part-beam.txt"
  done
fi
