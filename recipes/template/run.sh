#!/usr/bin/env bash
# Template recipe: your own recordings and transcripts -> a scored model. Copy recipes/template, point
# --importer/--input/--prepare-opts at your data, pick --config by data size (README.md), run it.
#
# Stages (each one `asr` command; --stage N --stop-stage M runs a range):
#   1 prepare   $input via `asr prepare $importer` -> data/manifests/${corpus}_cuts_{train,dev,test}.jsonl.gz,
#               text_*, utt2spk_*, ${corpus}_chars.txt (every character and its count: check it before training)
#   2 validate  the three manifests -> data/manifests/validate.json; errors stop the recipe (fix the data, or
#               write clean manifests with `asr validate ... --fix DIR`)
#   3 train     manifests + $config -> $exp_dir/checkpoints/epoch-*.pt; the units (the config's tokenizer or
#               --units char|bpe) are made from the training transcripts as training starts;
#               with --init-from MODEL the run starts from that model's encoder (new units allowed)
#   4 average   last $avg epoch checkpoints -> $exp_dir/model.pt
#   5 lm        text_train -> data/lm/3gram.arpa (word 3-gram)
#   6 lexicon   3gram.arpa words spelled in model.pt's units -> $exp_dir/lexicon.txt
#   7 tune      dev cuts, $tune_points x $tune_points LM weight x word score grid -> $exp_dir/lm-params.yaml
#   8 decode    test cuts, greedy and lexicon + LM beam search -> $exp_dir/decode/hyp-test-{greedy,beam-lm}.txt
#   9 score     hypotheses vs text_test -> $exp_dir/decode/wer-summary.txt, errs-*.txt
#
# Data layouts (asr prepare IMPORTER --help lists every option):
#   folder  DIR of audio files with a same-named .lab/.txt beside each (speaker = first subdirectory)
#   table   a CSV/TSV, e.g. --input transcripts.csv --prepare-opts "--audio file --text text --speaker speaker"
#   kaldi   a Kaldi data directory (wav.scp, text, optional segments, utt2spk)
#   jsonl   a NeMo manifest (audio_filepath, text, optional offset, duration)
#   lhotse  a corpus lhotse prepares, e.g. --importer "lhotse commonvoice" --prepare-opts "--opt languages=en"
# Without a dev and test split in the data, prepare holds out 10% + 10% of the speakers (see --prepare-opts
# --dev-fraction/--test-fraction). Outputs (data/, exp/) go to the current directory.
set -euo pipefail
recipe_dir=$(cd "$(dirname "$0")" && pwd)

stage=1                                # first stage to run
stop_stage=9                           # last stage to run
importer=folder                        # asr prepare IMPORTER: folder, table, kaldi, jsonl or "lhotse NAME"
input=                                 # your data: directory, table or manifest (lhotse: the corpus directory)
prepare_opts=                          # more options of asr prepare, e.g. "--case upper --remove-punct"
corpus=data                            # manifest names: CORPUS_cuts_SPLIT.jsonl.gz
config=$recipe_dir/../../conf/an4.yaml # training config: pick by hours of audio, see README.md
units=                                 # output units, char or bpe; empty: the config's tokenizer.kind
bpe_size=                              # BPE vocabulary size; empty: the config's tokenizer.vocab_size
init_from=                             # fine-tune from this model (.pt or folder; new units allowed); empty: scratch
exp_dir=exp                            # checkpoints, model.pt, decode/
avg=5                                  # epoch checkpoints averaged into model.pt
tune_points=13                         # LM weights (and word scores) tried in stage 7
. "$recipe_dir/../parse_options.sh"
. "$recipe_dir/../stage_times.sh"

manifests=data/manifests
cuts() { echo "$manifests/${corpus}_cuts_$1.jsonl.gz"; }

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  stage_begin 1 "prepare $input ($importer)"
  [ -n "$input" ] || { echo "$0: give --input (your data) and --importer" >&2; exit 2; }
  # $importer and $prepare_opts are word-split on purpose: "lhotse NAME", "--audio path --text sentence"
  [ -f $manifests/.done ] || { asr prepare $importer "$input" $manifests --corpus "$corpus" $prepare_opts &&
    touch $manifests/.done; }
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  stage_begin 2 "validate the manifests"
  asr validate "$(cuts train)" "$(cuts dev)" "$(cuts test)" --report $manifests/validate.json
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  stage_begin 3 "train with $config${units:+ ($units units)}${init_from:+ from $init_from} into $exp_dir"
  asr train --config "$config" --train "$(cuts train)" --dev "$(cuts dev)" --exp-dir "$exp_dir" \
    ${units:+tokenizer.kind=$units} ${bpe_size:+tokenizer.vocab_size=$bpe_size} \
    ${init_from:+init_from=$init_from init_units=data}
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  stage_begin 4 "average the last $avg epoch checkpoints"
  asr average "$exp_dir" --last "$avg" --out "$exp_dir/model.pt"
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  stage_begin 5 "word 3-gram from the training transcripts"
  asr lm build --order 3 --text $manifests/text_train --kaldi --out data/lm/3gram.arpa
fi

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  stage_begin 6 "lexicon of the LM's words in the model's units"
  asr lm lexicon "$exp_dir/model.pt" --lm data/lm/3gram.arpa --out "$exp_dir/lexicon.txt"
fi

if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
  stage_begin 7 "tune LM weight and word score on dev"
  asr tune "$exp_dir/model.pt" "$(cuts dev)" --lm data/lm/3gram.arpa --lexicon "$exp_dir/lexicon.txt" \
    --points "$tune_points" --out "$exp_dir/lm-params.yaml"
fi

if [ "$stage" -le 8 ] && [ "$stop_stage" -ge 8 ]; then
  stage_begin 8 "decode test: greedy, and lexicon + LM (tuned values from $exp_dir/lm-params.yaml)"
  asr decode "$exp_dir/model.pt" "$(cuts test)" --name test --method greedy beam-lm --out-dir "$exp_dir/decode"
fi

if [ "$stage" -le 9 ] && [ "$stop_stage" -ge 9 ]; then
  stage_begin 9 "score greedy and beam-lm"
  asr score --ref $manifests/text_test --utt2spk $manifests/utt2spk_test --out-dir "$exp_dir/decode" \
    --hyp "$exp_dir/decode/hyp-test-greedy.txt" "$exp_dir/decode/hyp-test-beam-lm.txt"
fi
