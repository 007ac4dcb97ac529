#!/usr/bin/env bash
# AN4 recipe: 3x256 BiLSTM-CTC on characters, end to end on a CPU.
#
# Stages (each one `asr` command; --stage N --stop-stage M runs a range):
#   0 download  -> downloads/an4/{etc,wav}         (skipped when --data-dir is given)
#   1 prepare   an4/etc + an4/wav -> data/manifests/an4_cuts_{train,dev,test}.jsonl.gz, text_*
#   2 train     manifests + $config -> $exp_dir/checkpoints/epoch-*.pt, log.csv (resumes if killed)
#   3 average   last $avg epoch checkpoints -> $exp_dir/model.pt
#   4 decode    model.pt + test cuts -> $exp_dir/decode/hyp-test-{greedy,beam}.{txt,jsonl}
#   5 score     hypotheses vs text_test -> $exp_dir/decode/wer-summary.txt, errs-*.txt
#   6 lm        text_train -> data/lm/3gram.arpa (interpolated modified Kneser-Ney word 3-gram)
#   7 lexicon   3gram.arpa words spelled in model.pt's units -> $exp_dir/lexicon.txt
#   8 tune      dev cuts, LM weight x word score grid -> $exp_dir/lm-params.yaml (read by stage 9)
#   9 decode    test cuts, lexicon + LM beam search -> $exp_dir/decode/hyp-test-beam-lm.{txt,jsonl}
#  10 score     greedy, beam and beam-lm vs text_test -> $exp_dir/decode/wer-summary.txt
#
# Data: --data-dir DIR (or $AN4_DIR) points at an existing AN4 tree holding etc/ and wav/
# (WAV or NIST SPHERE files); without it stage 0 downloads the CMU tarball (64 MB).
# Outputs (downloads/, data/, exp/) go to the current directory: run it from recipes/an4.
set -euo pipefail
recipe_dir=$(cd "$(dirname "$0")" && pwd)

stage=0                                # first stage to run
stop_stage=10                          # last stage to run
data_dir=${AN4_DIR:-}                  # AN4 tree with etc/ and wav/; empty: download it (stage 0)
config=$recipe_dir/../../conf/an4.yaml # training config (YAML)
exp_dir=exp                            # checkpoints, model.pt, decode/
avg=5                                  # epoch checkpoints averaged into model.pt
seed=0                                 # training seed (RESULTS.md reports seeds 0, 1 and 2: pass --exp-dir exp-sN too)
threads=0                              # torch threads of the training (0: all cores; 1 when two runs share 2 cores)
. "$recipe_dir/../parse_options.sh"
. "$recipe_dir/../stage_times.sh"

manifests=data/manifests

if [ -z "$data_dir" ]; then
  data_dir=downloads/an4
  if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
    stage_begin 0 "download AN4 into downloads/"
    asr download an4 downloads
  fi
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  stage_begin 1 "prepare manifests from $data_dir"
  [ -f $manifests/.done ] || { asr prepare an4 "$data_dir" $manifests && touch $manifests/.done; }
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  stage_begin 2 "train with $config into $exp_dir"
  asr train --config "$config" --train $manifests/an4_cuts_train.jsonl.gz \
    --dev $manifests/an4_cuts_dev.jsonl.gz --exp-dir "$exp_dir" seed="$seed" num_threads="$threads"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  stage_begin 3 "average the last $avg epoch checkpoints"
  asr average "$exp_dir" --last "$avg" --out "$exp_dir/model.pt"
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  stage_begin 4 "decode test (greedy and beam)"
  asr decode "$exp_dir/model.pt" $manifests/an4_cuts_test.jsonl.gz --name test \
    --method greedy beam --out-dir "$exp_dir/decode"
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  stage_begin 5 "score"
  asr score --ref $manifests/text_test --utt2spk $manifests/utt2spk_test --out-dir "$exp_dir/decode" \
    --hyp "$exp_dir/decode/hyp-test-greedy.txt" "$exp_dir/decode/hyp-test-beam.txt"
fi

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  stage_begin 6 "word 3-gram from the training transcripts"
  asr lm build --order 3 --text $manifests/text_train --kaldi --out data/lm/3gram.arpa
fi

if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
  stage_begin 7 "lexicon of the LM's words in the model's units"
  asr lm lexicon "$exp_dir/model.pt" --lm data/lm/3gram.arpa --out "$exp_dir/lexicon.txt"
fi

if [ "$stage" -le 8 ] && [ "$stop_stage" -ge 8 ]; then
  stage_begin 8 "tune LM weight and word score on dev"
  asr tune "$exp_dir/model.pt" $manifests/an4_cuts_dev.jsonl.gz --lm data/lm/3gram.arpa \
    --lexicon "$exp_dir/lexicon.txt" --out "$exp_dir/lm-params.yaml"
fi

if [ "$stage" -le 9 ] && [ "$stop_stage" -ge 9 ]; then
  stage_begin 9 "decode test with lexicon and LM (tuned values from $exp_dir/lm-params.yaml)"
  asr decode "$exp_dir/model.pt" $manifests/an4_cuts_test.jsonl.gz --name test \
    --method beam-lm --out-dir "$exp_dir/decode"
fi

if [ "$stage" -le 10 ] && [ "$stop_stage" -ge 10 ]; then
  stage_begin 10 "score greedy, beam and beam-lm"
  asr score --ref $manifests/text_test --utt2spk $manifests/utt2spk_test --out-dir "$exp_dir/decode" --hyp "$exp_dir/decode/hyp-test-greedy.txt" \
    "$exp_dir/decode/hyp-test-beam.txt" "$exp_dir/decode/hyp-test-beam-lm.txt"
fi
