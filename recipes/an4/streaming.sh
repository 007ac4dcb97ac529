#!/usr/bin/env bash
# AN4 streaming models next to the offline BiLSTM of run.sh: a unidirectional LSTM with look-ahead
# and latency-controlled BiLSTMs (LC-BLSTM) at the chunk sizes given, trained as they are run.
#
# Needs run.sh first (data/manifests, data/lm/3gram.arpa, $offline_exp/model.pt): the offline system is
# scored beside the streaming ones in stage 6, and the fine-tuned LC-BLSTMs start from its weights.
#
# Stages (each one `asr` command per system; --stage N --stop-stage M runs a range):
#   1 train     conf/an4_uni.yaml taught by $offline_exp/model.pt (distill_from) -> exp-uni;
#               conf/an4_lcblstm.yaml with encoder.chunk_frames=NC encoder.right_context=$right_context
#               -> exp-lcblstm-cNC-rNR, for NC in $chunks;
#               conf/an4_lcblstm_ft.yaml from $offline_exp/model.pt (init_from) with chunk_frames=NC
#               right_context=$ft_right_context -> exp-lcblstm-ft-cNC-rNR, for NC in $ft_chunks
#   2 average   last $avg epoch checkpoints -> EXP/model.pt
#   3 lexicon   3gram.arpa spelled in EXP/model.pt's units -> EXP/lexicon.txt
#   4 tune      LM weight and word score on dev -> EXP/lm-params.yaml
#   5 decode    test cuts, greedy and beam-lm -> exp-streaming/hyp-test-EXP-{greedy,beam-lm}.txt
#   6 score     every system (and the offline one) vs text_test -> exp-streaming/wer-summary.txt
#
# Algorithmic latency (asr/model/encoder.py): unidirectional La * k * hop + (win - hop); LC-BLSTM
# (La + Nc - 1 + Nr) * k * hop + (win - hop) for a chunk's first frame (hop 10 ms, win 25 ms):
# from scratch, k = 4: Nc 8 -> 375 ms, Nc 4 -> 215 ms; fine-tuned, k = 3 (the offline model's): Nc 5, Nr 8 -> 375 ms.
set -euo pipefail
recipe_dir=$(cd "$(dirname "$0")" && pwd)

stage=1                                # first stage to run
stop_stage=6                           # last stage to run
chunks="8 4"                           # LC-BLSTM chunk sizes Nc, in frames after subsampling (40 ms each)
right_context=2                        # LC-BLSTM right context Nr, in frames after subsampling
ft_chunks="5"                          # chunk sizes of the LC-BLSTMs fine-tuned from the offline model ("": none)
ft_right_context=8                     # their right context, in frames of the offline model (30 ms each)
uni=true                               # also the unidirectional system (false: LC-BLSTMs only)
uni_teacher=true                       # it learns $offline_exp/model.pt's posteriors as its yaml says (false: CTC only, exp-uni-ctc)
epochs=40                              # training epochs of the systems trained from scratch (fine-tuning: its yaml's)
ft_epochs=                             # training epochs of the fine-tuned systems (empty: conf/an4_lcblstm_ft.yaml's, 24)
avg=5                                  # epoch checkpoints averaged into model.pt
offline_exp=exp                        # run.sh's experiment directory, scored for comparison
seed=0                                 # training seed of every system (its folder gets -sN for N > 0)
threads=0                              # torch threads per training (0: all cores; 1 when two runs share 2 cores)
distill_weight=0                       # > 0: every system learns $offline_exp/model.pt's posteriors with this weight, folders get -kd
distill_temperature=1.0                # distillation temperature
distill_shift=                         # the teacher's posteriors delayed by this many frames (local/spike_delay.py), folders get -kdN
                                       # (empty: each yaml's, 4 for the unidirectional model, 0 for the others)
. "$recipe_dir/../parse_options.sh"

. "$recipe_dir/../stage_times.sh"
manifests=data/manifests
conf=$recipe_dir/../../conf
suffix=""
[ "$distill_weight" = 0 ] || suffix="-kd$distill_shift"
[ "$seed" = 0 ] || suffix="$suffix-s$seed"
systems=""
uni_exp=exp-uni
[ "$uni_teacher" = true ] || uni_exp=exp-uni-ctc
[ "$uni" = false ] || systems="$uni_exp$suffix"
for nc in $chunks; do systems="$systems exp-lcblstm-c$nc-r$right_context$suffix"; done
for nc in $ft_chunks; do systems="$systems exp-lcblstm-ft-c$nc-r$ft_right_context$suffix"; done
common=(seed="$seed" num_threads="$threads")
kd=()  # distillation overrides of every system
[ "$distill_weight" = 0 ] || kd=(distill_from="$offline_exp/model.pt" distill_weight="$distill_weight"
                                distill_temperature="$distill_temperature" ${distill_shift:+distill_shift="$distill_shift"})
uni_kd=(${kd[@]+"${kd[@]}"})  # the unidirectional system's: taught as its yaml says by default, not at all without uni_teacher
[ "$distill_weight" != 0 ] || uni_kd=(distill_from="$offline_exp/model.pt")
[ "$uni_teacher" = true ] || uni_kd=()

train() {  # EXP -> config and overrides of that system
  case $1 in
    exp-uni*) asr train --config "$conf/an4_uni.yaml" --train $manifests/an4_cuts_train.jsonl.gz \
      --dev $manifests/an4_cuts_dev.jsonl.gz --exp-dir "$1" epochs="$epochs" "${common[@]}" ${uni_kd[@]+"${uni_kd[@]}"} ;;
    exp-lcblstm-ft-c*) nc=${1#exp-lcblstm-ft-c}; nc=${nc%%-*}
      asr train --config "$conf/an4_lcblstm_ft.yaml" --train $manifests/an4_cuts_train.jsonl.gz \
        --dev $manifests/an4_cuts_dev.jsonl.gz --exp-dir "$1" init_from="$offline_exp/model.pt" \
        model.encoder.chunk_frames="$nc" model.encoder.right_context="$ft_right_context" ${ft_epochs:+epochs="$ft_epochs"} \
        "${common[@]}" ${kd[@]+"${kd[@]}"} ;;
    exp-lcblstm-c*) nc=${1#exp-lcblstm-c}; nc=${nc%%-*}
      asr train --config "$conf/an4_lcblstm.yaml" --train $manifests/an4_cuts_train.jsonl.gz \
        --dev $manifests/an4_cuts_dev.jsonl.gz --exp-dir "$1" epochs="$epochs" \
        model.encoder.chunk_frames="$nc" model.encoder.right_context="$right_context" "${common[@]}" \
        ${kd[@]+"${kd[@]}"} ;;
  esac
}

for exp in $systems; do
  if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
    stage_begin 1 "train $exp"
    train "$exp"
  fi
  if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
    stage_begin 2 "average $exp"
    asr average "$exp" --last "$avg" --out "$exp/model.pt"
  fi
  if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
    stage_begin 3 "lexicon for $exp"
    asr lm lexicon "$exp/model.pt" --lm data/lm/3gram.arpa --out "$exp/lexicon.txt"
  fi
  if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
    stage_begin 4 "tune $exp on dev"
    asr tune "$exp/model.pt" $manifests/an4_cuts_dev.jsonl.gz --lm data/lm/3gram.arpa \
      --lexicon "$exp/lexicon.txt" --out "$exp/lm-params.yaml"
  fi
  if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
    stage_begin 5 "decode test with $exp"
    asr decode "$exp/model.pt" $manifests/an4_cuts_test.jsonl.gz --name "test-$exp" \
      --method greedy beam-lm --out-dir exp-streaming
  fi
done

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  stage_begin 6 "score the streaming systems and $offline_exp"
  hyps=$(for exp in $systems; do echo "exp-streaming/hyp-test-$exp-greedy.txt exp-streaming/hyp-test-$exp-beam-lm.txt"; done)
  # shellcheck disable=SC2086
  asr score --ref $manifests/text_test --utt2spk $manifests/utt2spk_test --out-dir exp-streaming \
    --hyp $hyps "$offline_exp/decode/hyp-test-greedy.txt" "$offline_exp/decode/hyp-test-beam-lm.txt"
fi
