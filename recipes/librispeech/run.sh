#!/usr/bin/env bash
# LibriSpeech recipe: BiLSTM-CTC on sentencepiece BPE units, official n-gram LM for beam search.
#
# Stages (each one `asr` command, per set where it says so; --stage N --stop-stage M runs a range):
#   0 download  -> downloads/LibriSpeech/PART/...  (skipped when --data-dir is given)
#   1 prepare   PART/SPEAKER/CHAPTER/*.flac + *.trans.txt -> data/manifests/librispeech_cuts_PART.jsonl.gz,
#               text_PART, utt2spk_PART (PART: train-clean-100 or train-960, dev-clean, dev-other,
#               test-clean, test-other)
#   2 train     train manifest (+ speed-perturbed copies) + $config -> $exp_dir/checkpoints/epoch-*.pt
#               (dev-clean for the per-epoch dev WER; BPE trained inside; resumes if killed; torchrun if --ngpu > 1
#               or --nnodes > 1: RESULTS.md has the Slurm variant)
#   3 average   last $avg epoch checkpoints -> $exp_dir/model.pt
#   4 decode    model.pt, each dev/test set -> $exp_dir/decode/hyp-SET-{greedy,beam}.{txt,jsonl} (on the GPU unless
#               --ngpu 0; with --ngpu > 1 one torchrun process per GPU, each decoding a share of the set)
#   5 score     each set -> $exp_dir/decode/SET/wer-summary.txt, errs-*.txt
#   6 lm files  openslr SLR11 -> $lm_dir/{$lm.arpa.gz or librispeech-lm-norm.txt.gz, librispeech-vocab.txt}
#               (skipped when --lm-dir is given: that directory must hold them)
#   7 own lm    (--lm own only) librispeech-lm-norm.txt.gz -> data/lm/own-3gram.arpa (`asr lm build`, modified
#               Kneser-Ney, singletons of order >= 2 pruned). Order 3 is the limit: n-gram keys are 63-bit and
#               even 200k words take 18 bits each. Memory grows with the distinct 3-grams: tens of GB (estimate).
#   8 lexicon   the 200k words of librispeech-vocab.txt in model.pt's BPE units -> $exp_dir/lm-$lm/lexicon.txt
#   9 tune      dev-clean, 7 LM weights x 7 word scores -> $exp_dir/lm-$lm/lm-params.yaml (49 beam searches over
#               5.4 h: ~7 CPU-hours at the stand-in's 0.025 CPU-s per audio-s and point (estimate): use --nj;
#               with --ngpu > 1 the torchrun processes share the set, see RESULTS.md)
#  10 decode    each set, lexicon + LM beam search -> $exp_dir/lm-$lm/decode/hyp-SET-beam-lm.{txt,jsonl}
#  11 score     greedy, beam and beam-lm of each set -> $exp_dir/lm-$lm/SET/wer-summary.txt
#
# Options: --data-dir DIR (LibriSpeech/ holding the parts; or $LIBRISPEECH_DIR), --lm-dir DIR (SLR11 files),
# --lm 3-gram.pruned.1e-7 (default) | 3-gram | 4-gram | own, --config YAML (default conf/librispeech_small.yaml),
# --exp-dir DIR, --ngpu N (0: CPU), --train-set clean-100|960, --speed-perturb 0.9,1.1 (extra training copies
# at these speeds), --avg K, --nj N (beam search processes in decode and tune; 0: none; default 2),
# --nnodes N --rdzv-endpoint HOST:PORT (multi-node training: run --stage 2 --stop-stage 2 on every node, the
# endpoint being one node's address and a free port; one node: torchrun --standalone, never port 29500 twice).
# Downloads (openslr SLR12 archives, kept next to LibriSpeech/, unpacked about as large): 7.6 GB for clean-100
# + dev/test, 61 GB with train-960; LM files: 34 MB (pruned 3-gram) to 1.4 GB (LM text; 4-gram 1.3 GB).
# Outputs (downloads/, data/, exp/) go to the current directory: run it from recipes/librispeech.
set -euo pipefail
recipe_dir=$(cd "$(dirname "$0")" && pwd)

stage=0                                # first stage to run
stop_stage=11                          # last stage to run
data_dir=${LIBRISPEECH_DIR:-}          # LibriSpeech/ holding the parts; empty: download (stage 0)
lm_dir=                                # SLR11 LM files; empty: download into downloads/lm (stage 6)
lm=3-gram.pruned.1e-7                  # 3-gram.pruned.1e-7, 3-gram, 4-gram or own
config=$recipe_dir/../../conf/librispeech_small.yaml # training config (YAML)
exp_dir=exp                            # checkpoints, model.pt, decode/, lm-LM/
ngpu=1                                 # GPUs for training (0: CPU; > 1: torchrun)
train_set=clean-100                    # clean-100 or 960
speed_perturb=                         # extra training copies at these speeds, e.g. 0.9,1.1
avg=5                                  # epoch checkpoints averaged into model.pt
nj=                                    # beam search processes in decode and tune (0: none; empty: the asr default)
nnodes=1                               # machines training together (> 1: also give --rdzv-endpoint)
rdzv_endpoint=                         # HOST:PORT of the c10d rendezvous when --nnodes > 1
. "$recipe_dir/../parse_options.sh"
case $train_set in
  clean-100) train_part=train-clean-100; size_flag=() ;;
  960) train_part=train-960; size_flag=(--train-960) ;;
  *) echo "$0: --train-set must be clean-100 or 960, got $train_set" >&2; exit 2 ;;
esac
case $lm in
  3-gram.pruned.1e-7|3-gram|4-gram) lm_files=("$lm.arpa.gz" librispeech-vocab.txt) ;;
  own) lm_files=(librispeech-lm-norm.txt.gz librispeech-vocab.txt) ;;
  *) echo "$0: --lm must be 3-gram.pruned.1e-7, 3-gram, 4-gram or own, got $lm" >&2; exit 2 ;;
esac

. "$recipe_dir/../stage_times.sh"
manifests=data/manifests
sets="dev-clean dev-other test-clean test-other"
lm_exp=$exp_dir/lm-$lm
launch=()                              # torchrun before `asr train` (> 1 GPU or node)
if [ "$nnodes" -gt 1 ]; then
  [ -n "$rdzv_endpoint" ] || { echo "$0: --nnodes $nnodes needs --rdzv-endpoint HOST:PORT" >&2; exit 2; }
  launch=(torchrun --nnodes "$nnodes" --nproc-per-node "$ngpu" --rdzv-backend c10d --rdzv-endpoint "$rdzv_endpoint"
          --rdzv-id "asr-$(basename "$exp_dir")" --max-restarts 3 --no-python)
elif [ "$ngpu" -gt 1 ]; then
  launch=(torchrun --standalone --nproc-per-node "$ngpu" --max-restarts 3 --no-python)
fi
local_launch=()                        # decoding and tuning stay on this node
[ "$ngpu" -gt 1 ] && local_launch=(torchrun --standalone --nproc-per-node "$ngpu" --no-python)
overrides=()
device=(--device cuda)
[ "$ngpu" -eq 0 ] && overrides+=(device=cpu) && device=(--device cpu)
[ -n "$speed_perturb" ] && overrides+=("data.speed_perturb=[$speed_perturb]")
workers=()
[ -n "$nj" ] && workers=(--num-workers "$nj")

if [ -z "$data_dir" ]; then
  data_dir=downloads/LibriSpeech
  if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
    stage_begin 0 "download LibriSpeech ($train_part and dev/test) into downloads/"
    asr download librispeech downloads "${size_flag[@]}"
  fi
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  stage_begin 1 "prepare manifests from $data_dir"
  [ -f $manifests/.$train_part.done ] || { asr prepare librispeech "$data_dir" $manifests "${size_flag[@]}" \
    && touch $manifests/.$train_part.done; }
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  stage_begin 2 "train on $train_part with $config into $exp_dir (${ngpu} GPU(s))"
  "${launch[@]}" asr train --config "$config" --train $manifests/librispeech_cuts_$train_part.jsonl.gz \
    --dev $manifests/librispeech_cuts_dev-clean.jsonl.gz --exp-dir "$exp_dir" "${overrides[@]}"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  stage_begin 3 "average the last $avg epoch checkpoints"
  asr average "$exp_dir" --last "$avg" --out "$exp_dir/model.pt"
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  for set in $sets; do
    stage_begin 4 "decode $set (greedy and beam)"
    "${local_launch[@]}" asr decode "$exp_dir/model.pt" $manifests/librispeech_cuts_$set.jsonl.gz --name $set \
      --method greedy beam --out-dir "$exp_dir/decode" "${device[@]}" "${workers[@]}"
  done
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  for set in $sets; do
    stage_begin 5 "score $set"
    asr score --ref $manifests/text_$set --utt2spk $manifests/utt2spk_$set --out-dir "$exp_dir/decode/$set" \
      --hyp "$exp_dir/decode/hyp-$set-greedy.txt" "$exp_dir/decode/hyp-$set-beam.txt"
  done
fi

if [ -z "$lm_dir" ]; then
  lm_dir=downloads/lm
  if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
    stage_begin 6 "download ${lm_files[*]} into $lm_dir"
    asr download librispeech-lm $lm_dir --files "${lm_files[@]}"
  fi
fi
lm_file=$lm_dir/$lm.arpa.gz
[ "$lm" = own ] && lm_file=data/lm/own-3gram.arpa

if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ] && [ "$lm" = own ]; then
  stage_begin 7 "own 3-gram from $lm_dir/librispeech-lm-norm.txt.gz"
  asr lm build --order 3 --prune-singletons --text "$lm_dir/librispeech-lm-norm.txt.gz" --out $lm_file
fi

if [ "$stage" -le 8 ] && [ "$stop_stage" -ge 8 ]; then
  stage_begin 8 "lexicon of $lm_dir/librispeech-vocab.txt in the model's units"
  asr lm lexicon "$exp_dir/model.pt" --text "$lm_dir/librispeech-vocab.txt" --out "$lm_exp/lexicon.txt"
fi

if [ "$stage" -le 9 ] && [ "$stop_stage" -ge 9 ]; then
  stage_begin 9 "tune LM weight and word score on dev-clean with $lm_file"
  "${local_launch[@]}" asr tune "$exp_dir/model.pt" $manifests/librispeech_cuts_dev-clean.jsonl.gz --lm "$lm_file" \
    --lexicon "$lm_exp/lexicon.txt" --points 7 --out "$lm_exp/lm-params.yaml" "${device[@]}" "${workers[@]}"
fi

if [ "$stage" -le 10 ] && [ "$stop_stage" -ge 10 ]; then
  for set in $sets; do
    stage_begin 10 "decode $set with lexicon and $lm_file (tuned values from $lm_exp/lm-params.yaml)"
    "${local_launch[@]}" asr decode "$exp_dir/model.pt" $manifests/librispeech_cuts_$set.jsonl.gz --name $set \
      --method beam-lm --lm-params "$lm_exp/lm-params.yaml" --out-dir "$lm_exp/decode" "${device[@]}" "${workers[@]}"
  done
fi

if [ "$stage" -le 11 ] && [ "$stop_stage" -ge 11 ]; then
  for set in $sets; do
    stage_begin 11 "score $set: greedy, beam and beam-lm ($lm)"
    asr score --ref $manifests/text_$set --utt2spk $manifests/utt2spk_$set --out-dir "$lm_exp/$set" \
      --hyp "$exp_dir/decode/hyp-$set-greedy.txt" "$exp_dir/decode/hyp-$set-beam.txt" \
      "$lm_exp/decode/hyp-$set-beam-lm.txt"
  done
fi
