#!/usr/bin/env bash
# AN4 encoder study: vanilla tanh RNN vs GRU vs LSTM at an equal parameter budget.
#
# Every model reads its own conf/an4_CELL.yaml (values only): the features, x3 stacking, 3 bidirectional
# layers, optimiser, schedule and seed of conf/an4.yaml and 30 epochs where run.sh trains 40 (so that
# the three runs fit in about an hour on 2 cores); only the cell and the hidden size differ, chosen so
# that each model has 4.19M parameters:
#   lstm 256 units -> 4,188,188   gru 298 units -> 4,186,332   rnn 528 units -> 4,192,348  (28 character units)
#
# Stages (each one `asr` command, run per cell where it says so):
#   0 prepare   AN4 -> data/manifests (skipped if run.sh already did it)
#   1 train     per cell, $conf_dir/an4_CELL.yaml -> $exp_root/CELL/checkpoints, log.csv (training curves)
#   2 average   per cell -> $exp_root/CELL/model.pt
#   3 decode    per cell, test cuts, greedy -> $exp_root/CELL/decode/hyp-test-CELL-greedy.txt
#   4 lm        per cell, lexicon + tuned LM (needs data/lm/3gram.arpa from run.sh stage 6)
#                 -> $exp_root/CELL/decode/hyp-test-CELL-beam-lm.txt
#   5 score     greedy and beam-lm of all cells -> $exp_root/score/wer-summary.txt
#   6 diagnose  gradient norm vs lag and gate activations on test utterances -> $exp_root/diagnose/
#   7 curves    training curves of all cells -> $exp_root/curves.png
#
# Runs from recipes/an4 like run.sh; --cells "gru" trains a subset (e.g. one cell per shell).
set -euo pipefail
recipe_dir=$(cd "$(dirname "$0")" && pwd)

stage=0                             # first stage to run
stop_stage=7                        # last stage to run
data_dir=${AN4_DIR:-downloads/an4}  # AN4 tree with etc/ and wav/
conf_dir=$recipe_dir/../../conf     # holds an4_CELL.yaml for every cell
exp_root=exp/compare                # one folder per cell, score/, diagnose/, curves.png
cells="rnn gru lstm"                # cells to train and compare
avg=5                               # epoch checkpoints averaged into model.pt
epochs=                             # override the conf files' epochs; empty: theirs (30)
threads=0                           # torch threads per training (0: all cores)
. "$recipe_dir/../parse_options.sh"

# Diagnose utterances: the three longest AN4 test recordings (5.8-6.2 s, 193-206 encoder frames).
diag_utts="cen5-fcaw-b cen4-mdms2-b cen7-mdms2-b"

. "$recipe_dir/../stage_times.sh"
manifests=data/manifests
overrides=(num_threads=$threads)
[ -z "$epochs" ] || overrides+=(epochs=$epochs)
for cell in $cells; do
  [ -f "$conf_dir/an4_$cell.yaml" ] || { echo "$0: no config $conf_dir/an4_$cell.yaml for cell $cell" >&2; exit 2; }
done

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  stage_begin 0 "prepare manifests from $data_dir"
  [ -f $manifests/.done ] || { asr prepare an4 "$data_dir" $manifests && touch $manifests/.done; }
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  for cell in $cells; do
    stage_begin 1 "train $cell with $conf_dir/an4_$cell.yaml into $exp_root/$cell"
    asr train --config "$conf_dir/an4_$cell.yaml" --train $manifests/an4_cuts_train.jsonl.gz \
      --dev $manifests/an4_cuts_dev.jsonl.gz --exp-dir "$exp_root/$cell" "${overrides[@]}"
  done
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  for cell in $cells; do
    stage_begin 2 "average the last $avg checkpoints of $cell"
    asr average "$exp_root/$cell" --last "$avg" --out "$exp_root/$cell/model.pt"
  done
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  for cell in $cells; do
    stage_begin 3 "greedy decode of test with $cell"
    asr decode "$exp_root/$cell/model.pt" $manifests/an4_cuts_test.jsonl.gz --name "test-$cell" --method greedy \
      --out-dir "$exp_root/$cell/decode"
  done
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  [ -f data/lm/3gram.arpa ] || asr lm build --order 3 --text $manifests/text_train --kaldi --out data/lm/3gram.arpa
  for cell in $cells; do
    stage_begin 4 "lexicon, LM tuning on dev and beam-lm decode of test with $cell"
    asr lm lexicon "$exp_root/$cell/model.pt" --lm data/lm/3gram.arpa --out "$exp_root/$cell/lexicon.txt"
    asr tune "$exp_root/$cell/model.pt" $manifests/an4_cuts_dev.jsonl.gz --lm data/lm/3gram.arpa \
      --lexicon "$exp_root/$cell/lexicon.txt" --out "$exp_root/$cell/lm-params.yaml"
    asr decode "$exp_root/$cell/model.pt" $manifests/an4_cuts_test.jsonl.gz --name "test-$cell" --method beam-lm \
      --out-dir "$exp_root/$cell/decode"
  done
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  stage_begin 5 "score every cell (greedy and beam-lm)"
  hyps=()
  for method in greedy beam-lm; do
    for cell in $cells; do hyps+=("$exp_root/$cell/decode/hyp-test-$cell-$method.txt"); done
  done
  asr score --ref $manifests/text_test --utt2spk $manifests/utt2spk_test --hyp "${hyps[@]}" --out-dir "$exp_root/score"
fi

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  stage_begin 6 "gradient norm vs lag and gate activations"
  audio=()
  for utt in $diag_utts; do audio+=("$(find -L "$data_dir" -name "$utt.*" | head -1)"); done
  models=()
  for cell in $cells; do models+=("$exp_root/$cell/model.pt"); done
  asr diagnose "${models[@]}" --labels $cells --audio "${audio[@]}" --out-dir "$exp_root/diagnose"
fi

if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
  stage_begin 7 "training curves"
  dirs=()
  for cell in $cells; do dirs+=("$exp_root/$cell"); done
  asr curves "${dirs[@]}" --labels $cells --out "$exp_root/curves.png"
fi
