#!/usr/bin/env bash
# AN4 study: which changes to conf/an4.yaml lower WER within the 15-minute budget, selected on dev.
#
# Every variant is conf/an4.yaml plus `asr train` overrides (the table below), trained on the
# study split: 11 of the 74 training speakers (144 utterances, 15%) held out as dev instead of
# run.sh's 5 (66 utterances), so that one word weighs 0.12 WER points instead of 0.27; the same
# split for every variant. Test is decoded only for the variants kept (stage 7).
#
# Stages (each one `asr` command, run per variant where it says so):
#   0 prepare   AN4 -> $work/manifests with --dev-fraction $dev_fraction (the study split)
#   1 train     per variant and seed: conf/an4.yaml + its overrides -> $work/exp/NAME[-sSEED] (log.csv)
#   2 average   per variant, last $avg epochs -> $work/exp/NAME/model.pt
#   3 decode    per variant, dev greedy -> $work/exp/NAME/decode/hyp-dev-greedy.txt
#   4 lm        word $order-gram of the study split's training text -> $work/lm/word.arpa
#   5 lexicon   per variant, then LM weight / word score tuned on dev -> $work/exp/NAME/lm-params.yaml
#   6 decode    per variant, dev beam-lm with the tuned values -> $work/exp/NAME/decode/hyp-dev-beam-lm.txt
#   7 score     per variant, dev greedy and beam-lm -> $work/exp/NAME/decode/wer-summary.txt
#   8 table     all variants -> $work/study.md (local/study_table.py: dev WER, time, audio-s/s, parameters)
#   9 test      the variants in --keep: test greedy and beam-lm, scored -> $work/exp/NAME/decode/
#  10 lm study  the variants in --keep, dev: word 4-gram (lexicon), and lexicon-free search with a
#               character $char_order-gram, which can spell words the lexicon lacks; each tuned on dev
#               -> $work/exp/NAME/lm-study/{word4,char}/ (hyp-dev-beam-lm.txt, wer-summary.txt)
#
# Runs from recipes/an4; --variants "x4 interctc" runs a subset (e.g. one per shell: each training
# then uses one thread, --threads 1, and two run side by side on a 2-core machine).
set -euo pipefail
recipe_dir=$(cd "$(dirname "$0")" && pwd)

stage=0                                # first stage to run
stop_stage=8                           # last stage to run
data_dir=${AN4_DIR:-downloads/an4}     # AN4 tree with etc/ and wav/
work=exp/study                         # manifests/, lm/, exp/NAME/, study.md
dev_fraction=0.15                      # share of training speakers held out as the study's dev
config=$recipe_dir/../../conf/an4.yaml # the configuration every variant starts from
variants="base x4 x4-interctc x4-proj x4-do3"  # names from the table (measured; the rest are not yet)
keep=""                                # variants decoded on test in stage 9
seeds="0"                              # training seeds of every variant (exp/NAME for seed 0, exp/NAME-sN for N)
threads=1                              # torch threads per training
avg=5                                  # epoch checkpoints averaged
order=3                                # word n-gram order
char_order=6                           # character n-gram order of stage 10's lexicon-free search (KenLM loads at most 6)
. "$recipe_dir/../parse_options.sh"

# name -> overrides of conf/an4.yaml (see RESULTS.md, "AN4 study", for where each idea comes from).
# base is conf/an4.yaml (x3 frames), kept as the default by the study; x4 tied it with one seed, not with two.
declare -A overrides=(
  [base]="model.subsampling.factor=3"
  [x4]="model.subsampling.factor=4"
  [x4-ep60]="model.subsampling.factor=4 epochs=60"
  [x4-interctc]="model.subsampling.factor=4 inter_ctc_layer=2"
  [x4-proj]="model.subsampling.factor=4 model.encoder.hidden_size=320 model.encoder.projection_size=256"
  [x4-4layers]="model.subsampling.factor=4 model.encoder.num_layers=4 model.encoder.hidden_size=224"
  [x4-do3]="model.subsampling.factor=4 model.encoder.dropout=0.3"
  [x4-sa-strong]="model.subsampling.factor=4 model.specaug.freq_width=27 model.specaug.time_masks=4"
  [x4-bpe50]="model.subsampling.factor=4 tokenizer.kind=bpe tokenizer.vocab_size=50"
  [conv2d-x2]="model.subsampling.kind=conv2d model.subsampling.factor=2"
  [conv2d-x3]="model.subsampling.kind=conv2d model.subsampling.factor=3"
  [conv2d-x4]="model.subsampling.kind=conv2d model.subsampling.factor=4"
  [conv-x3]="model.subsampling.kind=conv model.subsampling.factor=3"
)

. "$recipe_dir/../stage_times.sh"
manifests=$work/manifests
for name in $variants $keep; do
  [ -n "${overrides[$name]+set}" ] || { echo "$0: unknown variant '$name' (see the table in $0)" >&2; exit 2; }
done
stage_on() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
run_name() { if [ "$2" = 0 ]; then echo "$1"; else echo "$1-s$2"; fi; }  # VARIANT SEED -> exp folder name
runs=$(for name in $variants; do for seed in $seeds; do run_name "$name" "$seed"; done; done)

if stage_on 0; then
  stage_begin 0 "prepare the study split ($dev_fraction of the speakers as dev)"
  [ -f $manifests/.done ] || { asr prepare an4 "$data_dir" $manifests --dev-fraction "$dev_fraction" && touch $manifests/.done; }
fi

for name in $variants; do
  for seed in $seeds; do
    exp=$work/exp/$(run_name "$name" "$seed")
    if stage_on 1; then
      stage_begin 1 "train $name, seed $seed (${overrides[$name]:-conf/an4.yaml as it is})"
      # shellcheck disable=SC2086  # the overrides are words
      asr train --config "$config" --train $manifests/an4_cuts_train.jsonl.gz --dev $manifests/an4_cuts_dev.jsonl.gz \
        --exp-dir "$exp" num_threads=$threads seed=$seed ${overrides[$name]}
    fi
    if stage_on 2; then
      asr average "$exp" --last "$avg" --out "$exp/model.pt"
    fi
    if stage_on 3; then
      asr decode "$exp/model.pt" $manifests/an4_cuts_dev.jsonl.gz --name dev --method greedy --out-dir "$exp/decode"
    fi
  done
done

if stage_on 4; then
  stage_begin 4 "word $order-gram of the study split's training text"
  asr lm build --order "$order" --text $manifests/text_train --kaldi --out $work/lm/word.arpa
fi

for name in $runs; do
  exp=$work/exp/$name
  if stage_on 5; then
    stage_begin 5 "lexicon and LM weights of $name, tuned on dev"
    asr lm lexicon "$exp/model.pt" --lm $work/lm/word.arpa --out "$exp/lexicon.txt"
    asr tune "$exp/model.pt" $manifests/an4_cuts_dev.jsonl.gz --lm $work/lm/word.arpa \
      --lexicon "$exp/lexicon.txt" --out "$exp/lm-params.yaml"
  fi
  if stage_on 6; then
    asr decode "$exp/model.pt" $manifests/an4_cuts_dev.jsonl.gz --name dev --method beam-lm --out-dir "$exp/decode"
  fi
  if stage_on 7; then
    asr score --ref $manifests/text_dev --utt2spk $manifests/utt2spk_dev --out-dir "$exp/decode" --no-html \
      --hyp "$exp/decode/hyp-dev-greedy.txt" "$exp/decode/hyp-dev-beam-lm.txt"
  fi
done

if stage_on 8; then
  stage_begin 8 "table of all variants -> $work/study.md"
  "$(dirname "$(command -v asr)")/python" "$recipe_dir/local/study_table.py" --exp-root $work/exp --seeds $seeds \
    -- $variants > $work/study.md
  cat $work/study.md
fi

for name in $keep; do
  exp=$work/exp/$name
  if stage_on 9; then
    stage_begin 9 "test of $name"
    asr decode "$exp/model.pt" $manifests/an4_cuts_test.jsonl.gz --name test --method greedy beam-lm \
      --out-dir "$exp/decode"
    asr score --ref $manifests/text_test --utt2spk $manifests/utt2spk_test --out-dir "$exp/decode" --no-html \
      --hyp "$exp/decode/hyp-test-greedy.txt" "$exp/decode/hyp-test-beam-lm.txt"
  fi
done

for name in $keep; do
  exp=$work/exp/$name
  out=$exp/lm-study
  if stage_on 10; then
    stage_begin 10 "LM study on dev with $name"
    asr lm build --order 4 --text $manifests/text_train --kaldi --out $out/word4.arpa
    asr lm build --order "$char_order" --text $manifests/text_train --kaldi --units-of "$exp/model.pt" \
      --out $out/char.arpa
    asr tune "$exp/model.pt" $manifests/an4_cuts_dev.jsonl.gz --lm $out/word4.arpa --lexicon "$exp/lexicon.txt" \
      --out $out/word4/lm-params.yaml
    asr tune "$exp/model.pt" $manifests/an4_cuts_dev.jsonl.gz --lm $out/char.arpa --word-score-range 0 0 \
      --out $out/char/lm-params.yaml
    for lm in word4 char; do
      asr decode "$exp/model.pt" $manifests/an4_cuts_dev.jsonl.gz --name dev --method beam-lm \
        --lm-params $out/$lm/lm-params.yaml --out-dir $out/$lm
      asr score --ref $manifests/text_dev --utt2spk $manifests/utt2spk_dev --out-dir $out/$lm --no-html \
        --hyp $out/$lm/hyp-dev-beam-lm.txt
    done
  fi
done
