"""The ``asr`` command line: each subcommand parses arguments and calls one library function."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

__all__ = ["main"]

log = logging.getLogger(__name__)


def _only_for(corpus: str, options: dict, owner: str) -> None:
    """Reject the ``options`` (name -> value; None or False: not given) unless ``corpus`` is ``owner``."""
    given = [name for name, value in options.items() if value not in (None, False)]
    if given and corpus != owner:
        raise ValueError(f"{', '.join(given)}: {owner} only, not for {corpus}")


def _download(args) -> None:
    _only_for(args.corpus, {"--parts": args.parts, "--train-960": args.train_960}, "librispeech")
    _only_for(args.corpus, {"--files": args.files}, "librispeech-lm")
    if args.corpus == "librispeech":
        from .data.corpora.librispeech import download_librispeech

        print(download_librispeech(args.target_dir, args.parts, args.train_960))
        return
    if args.corpus == "librispeech-lm":
        from .data.corpora.librispeech import LM_FILES, download_librispeech_lm

        print(download_librispeech_lm(args.target_dir, args.files or LM_FILES))
        return
    from .data.corpora.an4 import download_an4

    print(download_an4(args.target_dir))


def _prepare(args) -> None:
    _only_for(args.corpus, {"--dev-fraction": args.dev_fraction, "--seed": args.seed}, "an4")
    _only_for(args.corpus, {"--phones": args.phones, "--dev-speakers": args.dev_speakers,
                            "--test-speakers": args.test_speakers}, "timit")
    _only_for(args.corpus, {"--parts": args.parts, "--train-960": args.train_960, "--num-jobs": args.num_jobs},
              "librispeech")
    if args.corpus == "timit":
        from .data.corpora.timit import prepare_timit, read_speaker_list

        prepare_timit(args.corpus_dir, args.out_dir, phones=args.phones or 48,
                      dev_speakers=read_speaker_list(args.dev_speakers) if args.dev_speakers else None,
                      test_speakers=read_speaker_list(args.test_speakers) if args.test_speakers else None)
    elif args.corpus == "librispeech":
        from .data.corpora.librispeech import prepare_librispeech

        jobs = {"num_jobs": args.num_jobs} if args.num_jobs else {}
        prepare_librispeech(args.corpus_dir, args.out_dir, parts=args.parts, train_960=args.train_960, **jobs)
    else:
        from .data.corpora.an4 import prepare_an4

        defaults = {"dev_fraction": args.dev_fraction, "seed": args.seed}
        prepare_an4(args.corpus_dir, args.out_dir, **{k: v for k, v in defaults.items() if v is not None})


def _train(args) -> None:
    from .config import load_config
    from .training.loop import TrainingStopped, train

    cfg = load_config(args.config, args.overrides)
    try:
        train(cfg, args.train, args.dev, args.exp_dir)
    except TrainingStopped as stopped:
        log.warning("%s", stopped)
        sys.exit(128 + stopped.signum)
    finally:
        import torch.distributed as dist

        if dist.is_initialized():  # under torchrun
            dist.destroy_process_group()


def _average(args) -> None:
    from .model.checkpoint import average_checkpoints, list_checkpoints, save_atomic

    paths = list_checkpoints(args.exp_dir)[-args.last:]
    save_atomic(average_checkpoints(paths), args.out)
    log.info("wrote %s", args.out)


def _decode(args) -> None:
    from .model.checkpoint import load_model
    from .data.cuts import load_cuts
    from .decoding.search import decode_cuts, write_hypotheses
    from .decoding.tune import beam_lm_options, default_params_path

    model, tokenizer = load_model(args.model)
    cuts = load_cuts(args.cuts)
    given = dict(beam_size=args.beam_size, beam_threshold=args.beam_threshold, nbest=args.nbest)
    for method in args.method:
        options = {k: v for k, v in given.items() if v is not None}
        if method == "beam-lm":
            lm_given = dict(lm=args.lm, lexicon=args.lexicon, lm_weight=args.lm_weight, word_score=args.word_score)
            options = beam_lm_options(args.lm_params or default_params_path(args.model), {**given, **lm_given},
                                      explicit=args.lm_params is not None)
        workers = args.num_workers if method != "greedy" else 0
        results = list(decode_cuts(model, tokenizer, cuts, "greedy" if method == "greedy" else "beam",
                                   max_duration=args.max_duration, num_workers=workers, **options))
        path = write_hypotheses(results, args.out_dir, f"{args.name}-{method}")
        log.info("wrote %s", path)


def _lm(args) -> None:
    if args.lm_command == "build":
        from .decoding.lm import build_lm

        tokenizer = None
        if args.units_of is not None:
            from .model.checkpoint import load_model

            tokenizer = load_model(args.units_of)[1]
        build_lm(args.text, args.out, args.order, args.prune_singletons, args.kaldi, tokenizer)
    else:
        from .model.checkpoint import load_model
        from .decoding.lexicon import lexicon_from_words

        lexicon_from_words(load_model(args.model)[1], args.out, args.lm, args.text, args.kaldi)


def _tune(args) -> None:
    from .model.checkpoint import load_model
    from .data.cuts import load_cuts
    from .decoding.tune import default_params_path, search_points, tune, write_lm_params

    model, tokenizer = load_model(args.model)
    points = search_points(args.search, tuple(args.lm_weight_range), tuple(args.word_score_range), args.points,
                           args.trials, args.seed)
    params = tune(model, tokenizer, load_cuts(args.cuts), args.lm, args.lexicon, points, args.beam_size,
                  args.beam_threshold, args.num_workers, args.max_duration)
    log.info("wrote %s", write_lm_params(params, args.out or default_params_path(args.model)))


def _score(args) -> None:
    from .scoring.normalize import Normalizer

    if args.ref is None:
        raise ValueError("--ref is required")
    normalizer = Normalizer(args.case, args.remove_punct, args.split_hyphens, args.mapping, args.fold)
    if args.score_command == "compare":
        from .scoring.stats import compare_files

        result = compare_files(args.ref, args.hyp_a, args.hyp_b, args.unit, utt2spk=args.utt2spk,
                               normalizer=normalizer, n_boot=args.bootstrap, seed=args.seed, out_dir=args.out_dir)
        print(result.report(), end="")
        return
    if not args.hyp or args.out_dir is None:
        raise ValueError("--hyp and --out-dir are required (or use 'asr score compare A B --ref REF')")
    from .scoring.report import score_files

    for line in score_files(args.ref, args.hyp, args.out_dir, tuple(args.units), utt2spk=args.utt2spk,
                            normalizer=normalizer, html=not args.no_html):
        print(line)


def _transcribe(args) -> None:
    from .audio.segment import SegmentConfig
    from .inference.transcribe import transcribe

    options = dict(beam_size=args.beam_size, beam_threshold=args.beam_threshold, nbest=args.nbest, lm=args.lm,
                   lexicon=args.lexicon, lm_weight=args.lm_weight, word_score=args.word_score)
    given = dict(batch_size=args.batch_size, threads=args.threads, channel=args.channel)
    given_segment = dict(max_segment=args.max_segment, min_silence=args.min_silence)
    segment = SegmentConfig(**{k: v for k, v in given_segment.items() if v is not None})
    summary = transcribe(args.model, args.audio, args.list, args.format, args.output_dir, args.method, options,
                         args.lm_params, segment=segment, progress=args.progress,
                         on_error=lambda line: print(f"asr transcribe: error: {line}", file=sys.stderr, flush=True),
                         **{k: v for k, v in given.items() if v is not None})
    print(f"asr transcribe: {summary.line()}", file=sys.stderr)
    if summary.failed:
        raise ValueError(f"{len(summary.failed)} input(s) failed, see above")


def _export(args) -> None:
    from .inference.export import export_model

    export_model(args.model, args.out)


def _diagnose(args) -> None:
    from .analysis.diagnose import diagnose, load_models

    diagnose(load_models(args.models, args.labels), args.audio, args.out_dir)


def _curves(args) -> None:
    from .training.curves import plot_curves

    plot_curves(args.exp_dirs, args.out, args.labels)


def _add_beam_options(p: argparse.ArgumentParser, item: str) -> None:
    """The beam search and LM flags that `decode` and `transcribe` share."""
    p.add_argument("--beam-size", "--beam", type=int, help="hypotheses kept per frame (default 16, or tuned)")
    p.add_argument("--beam-threshold", type=float, help="prune hypotheses this far below the best (default 25)")
    p.add_argument("--nbest", type=int, help=f"hypotheses per {item} in the JSON output (default 1)")
    p.add_argument("--lm", type=Path, help="beam-lm: KenLM model (ARPA or binary), words or, without "
                   "--lexicon, the model's units")
    p.add_argument("--lexicon", type=Path, help="beam-lm: WORD<TAB>UNITS file from 'asr lm lexicon'")
    p.add_argument("--lm-weight", type=float, help="beam-lm: LM weight (default: tuned, else 2.0)")
    p.add_argument("--word-score", type=float, help="beam-lm: score added per word, lexicon search only "
                   "(default: tuned, else 0)")
    p.add_argument("--lm-params", type=Path, help="beam-lm: YAML from 'asr tune' that supplies every beam-lm "
                   "option not given here (default: lm-params.yaml next to MODEL, if it exists)")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asr", description="Recurrent CTC speech recognition.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("download", help="download a corpus (an4, librispeech) or the LibriSpeech LM resources")
    p.add_argument("corpus", choices=["an4", "librispeech", "librispeech-lm"],
                   help="librispeech-lm: the official n-grams, lexicon and LM text (openslr SLR11)")
    p.add_argument("target_dir", type=Path)
    p.add_argument("--parts", nargs="+", metavar="PART", help="librispeech: parts to fetch (default: "
                   "train-clean-100, dev-clean, dev-other, test-clean, test-other)")
    p.add_argument("--train-960", action="store_true", help="librispeech: train-clean-360 and train-other-500 too")
    p.add_argument("--files", nargs="+", metavar="NAME", help="librispeech-lm: file names (default: all six; "
                   "files already in TARGET_DIR are skipped)")
    p.set_defaults(func=_download)

    p = sub.add_parser("prepare", help="write lhotse cut manifests for a corpus (an4, timit, librispeech)")
    p.add_argument("corpus", choices=["an4", "timit", "librispeech"])
    p.add_argument("corpus_dir", type=Path, help="corpus directory (holding etc/ and wav/ for an4, "
                   "TRAIN/ and TEST/ for timit, the parts for librispeech)")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--dev-fraction", type=float, help="an4: share of training speakers held out (default 0.07)")
    p.add_argument("--seed", type=int, help="an4: picks the dev speakers (default 0)")
    p.add_argument("--phones", type=int, choices=[48, 61, 39], help="timit: training phone set (default 48)")
    p.add_argument("--dev-speakers", type=Path, metavar="FILE", help="timit: dev speaker ids, one per line "
                   "(default: the standard 50)")
    p.add_argument("--test-speakers", type=Path, metavar="FILE", help="timit: test speaker ids (default: the "
                   "24 of the core test set)")
    p.add_argument("--parts", nargs="+", metavar="PART", help="librispeech: parts to prepare (default: "
                   "train-clean-100, dev-clean, dev-other, test-clean, test-other)")
    p.add_argument("--train-960", action="store_true", help="librispeech: all three training parts, plus their "
                   "union as librispeech_cuts_train-960.jsonl.gz")
    p.add_argument("--num-jobs", type=int, help="librispeech: threads reading FLAC headers (default 4)")
    p.set_defaults(func=_prepare)

    p = sub.add_parser("train", help="train a CTC model (resumes automatically)")
    p.add_argument("--config", type=Path, help="YAML file of TrainConfig values")
    p.add_argument("--train", type=Path, required=True, help="training cut manifest")
    p.add_argument("--dev", type=Path, required=True, help="dev cut manifest")
    p.add_argument("--exp-dir", type=Path, required=True)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. model.encoder.cell=gru epochs=10")
    p.set_defaults(func=_train)

    p = sub.add_parser("average", help="average the last K epoch checkpoints into a model file")
    p.add_argument("exp_dir", type=Path)
    p.add_argument("--last", type=int, default=5)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_average)

    p = sub.add_parser("decode", help="decode a cut manifest; writes hyp-NAME-METHOD.{txt,jsonl}")
    p.add_argument("model", type=Path)
    p.add_argument("cuts", type=Path)
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--name", default="test", help="set name used in output file names")
    p.add_argument("--method", nargs="+", choices=["greedy", "beam", "beam-lm"], default=["greedy"],
                   help="beam: lexicon-free, no LM; beam-lm: with --lm and/or --lexicon")
    _add_beam_options(p, "utterance")
    p.add_argument("--num-workers", type=int, default=min(2, os.cpu_count() or 1),
                   help="processes for the beam search (0: none; default: %(default)s)")
    p.add_argument("--max-duration", type=float, default=200.0, help="seconds of audio per batch")
    p.set_defaults(func=_decode)

    p = sub.add_parser("lm", help="n-gram language models and lexicons for beam-lm decoding")
    lm_sub = p.add_subparsers(dest="lm_command", required=True, metavar="LM_COMMAND")
    q = lm_sub.add_parser("build", help="interpolated modified Kneser-Ney n-gram -> ARPA")
    q.add_argument("--order", type=int, default=3)
    q.add_argument("--text", type=Path, required=True, help="one sentence per line (.gz allowed)")
    q.add_argument("--out", type=Path, required=True, help="ARPA file to write")
    q.add_argument("--prune-singletons", action="store_true", help="drop n-grams (order >= 2) seen once")
    q.add_argument("--kaldi", action="store_true", help="TEXT is Kaldi text: drop each line's first field")
    q.add_argument("--units-of", type=Path, metavar="MODEL", help="spell the text in MODEL's units: an LM "
                   "for lexicon-free beam-lm decoding")
    q.set_defaults(func=_lm)
    q = lm_sub.add_parser("lexicon", help="spell the words of an LM or text in a model's units")
    q.add_argument("model", type=Path)
    q.add_argument("--out", type=Path, required=True, help="lexicon file; unspellable words go to "
                   "OUT with suffix .unspellable.txt")
    source = q.add_mutually_exclusive_group(required=True)
    source.add_argument("--lm", type=Path, help="take the words from this ARPA file's unigrams")
    source.add_argument("--text", type=Path, help="take the words from this text file")
    q.add_argument("--kaldi", action="store_true", help="TEXT is Kaldi text: drop each line's first field")
    q.set_defaults(func=_lm)

    p = sub.add_parser("tune", help="search LM weight and word score on a dev set; writes lm-params.yaml")
    p.add_argument("model", type=Path)
    p.add_argument("cuts", type=Path, help="dev cut manifest")
    p.add_argument("--lm", type=Path, required=True)
    p.add_argument("--lexicon", type=Path, help="omit for lexicon-free search with a unit LM")
    p.add_argument("--search", choices=["grid", "random"], default="grid")
    p.add_argument("--lm-weight-range", type=float, nargs=2, default=[0.0, 3.0], metavar=("LO", "HI"))
    p.add_argument("--word-score-range", type=float, nargs=2, default=[-2.0, 4.0], metavar=("LO", "HI"))
    p.add_argument("--points", type=int, default=13, help="grid: values per axis")
    p.add_argument("--trials", type=int, default=60, help="random: points drawn")
    p.add_argument("--seed", type=int, default=0, help="random: seed")
    p.add_argument("--beam-size", "--beam", type=int, default=50)
    p.add_argument("--beam-threshold", type=float, default=25.0)
    p.add_argument("--num-workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--max-duration", type=float, default=200.0, help="seconds of audio per batch")
    p.add_argument("--out", type=Path, help="default: lm-params.yaml next to MODEL, read by 'asr decode'")
    p.set_defaults(func=_tune)

    p = sub.add_parser("score", help="WER/CER/PER with sclite's counts and reports; 'score compare A B' "
                       "tests two systems", description="asr score --ref REF --hyp HYP... --out-dir DIR, or "
                       "asr score compare HYP_A HYP_B --ref REF: bootstrap intervals and paired tests.")
    p.add_argument("--hyp", type=Path, nargs="+", help="hypothesis files (Kaldi text, trn or JSONL)")
    p.add_argument("--units", nargs="+", choices=["word", "char", "phone"], default=["word", "char"])
    p.add_argument("--no-html", action="store_true", help="skip report.html (and matplotlib)")
    q = p.add_subparsers(dest="score_command", metavar="compare").add_parser(
        "compare", help="bootstrap 95%% intervals, paired bootstrap and MAPSSWE tests of B against A")
    q.add_argument("hyp_a", type=Path)
    q.add_argument("hyp_b", type=Path)
    q.add_argument("--unit", choices=["word", "char", "phone"], default="word")
    q.add_argument("--bootstrap", type=int, default=1000, help="resamples (default %(default)s)")
    q.add_argument("--seed", type=int, default=0)
    for parser_, later in ((p, False), (q, True)):
        # shared options: the compare copies default to SUPPRESS so that options given before 'compare' stay
        keep = (lambda value: argparse.SUPPRESS) if later else (lambda value: value)
        parser_.add_argument("--ref", type=Path, default=keep(None), help="Kaldi text, trn or JSONL (required)")
        parser_.add_argument("--out-dir", type=Path, default=keep(None),
                             help="report directory (score: required; compare: optional)")
        parser_.add_argument("--utt2spk", type=Path, default=keep(None), help="'uttid speaker' lines (default: "
                             "sclite's trn convention, the id up to its first '-', else '_')")
        parser_.add_argument("--case", choices=["keep", "lower", "upper"], default=keep("keep"))
        parser_.add_argument("--remove-punct", action="store_true", default=keep(False),
                             help="delete punctuation except word-internal ' and -")
        parser_.add_argument("--split-hyphens", action="store_true", default=keep(False))
        parser_.add_argument("--mapping", type=Path, default=keep(None),
                             help="GLM-like file of 'LEFT => RIGHT' rules applied to both sides")
        parser_.add_argument("--fold", choices=["timit39"], default=keep(None),
                             help="phone folding for the phone unit (TIMIT 61 -> 39)")
    p.set_defaults(func=_score)

    p = sub.add_parser("transcribe", help="transcribe audio files of any format, rate and length; text to stdout")
    p.add_argument("model", type=Path)
    p.add_argument("audio", nargs="*", help="audio files, directories (searched recursively) or glob patterns")
    p.add_argument("--list", type=Path, help="file with one more input per line")
    p.add_argument("--format", "-f", nargs="+", choices=["txt", "json", "srt", "vtt"], default=["txt"],
                   help="txt goes to stdout (PATH<TAB>TEXT per file when there are several) unless --output-dir is "
                   "given; the others are written next to each input or into --output-dir")
    p.add_argument("--output-dir", "-o", type=Path, help="write NAME.FORMAT files here (directory inputs keep "
                   "their tree)")
    p.add_argument("--method", choices=["greedy", "beam", "beam-lm"], default="greedy",
                   help="beam: lexicon-free, no LM; beam-lm: with --lm and/or --lexicon (as in 'asr decode')")
    _add_beam_options(p, "segment")
    p.add_argument("--channel", type=int, help="transcribe this channel (0-based) instead of the average of all")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--batch-size", type=int, help="segments per forward pass (default 16)")
    p.add_argument("--max-segment", type=float, help="longer files are split on silence into segments of at most "
                   "this many seconds (default 30)")
    p.add_argument("--min-silence", type=float, help="long files: a pause this long (s) ends a segment (default 0.3)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: on a terminal only)")
    p.set_defaults(func=_transcribe)

    p = sub.add_parser("export", help="write a TorchScript model that runs without this package")
    p.add_argument("model", type=Path)
    p.add_argument("--out", type=Path, required=True, help="TorchScript file (e.g. model.ts)")
    p.set_defaults(func=_export)

    p = sub.add_parser("diagnose", help="gradient norm vs lag and gate activations of models on audio files")
    p.add_argument("models", type=Path, nargs="+", metavar="MODEL", help="model files or training checkpoints")
    p.add_argument("--audio", type=Path, nargs="+", required=True, metavar="FILE")
    p.add_argument("--out-dir", type=Path, required=True, help="gets gradient_lag.{json,png}, gates.json and "
                   "gates_LABEL.png per gated model")
    p.add_argument("--labels", nargs="+", metavar="LABEL", help="one name per model (default: the model's "
                   "directory name, the run's for EXP/checkpoints/*.pt)")
    p.set_defaults(func=_diagnose)

    p = sub.add_parser("curves", help="plot train loss, dev loss and dev WER per epoch from runs' log.csv")
    p.add_argument("exp_dirs", type=Path, nargs="+", metavar="EXP_DIR")
    p.add_argument("--out", type=Path, required=True, help="PNG to write; the numbers go to OUT with suffix .json")
    p.add_argument("--labels", nargs="+", metavar="LABEL", help="one name per run (default: directory names)")
    p.set_defaults(func=_curves)
    _add_stream_parser(sub)
    return parser


def _add_stream_parser(sub) -> None:
    from .config import StreamConfig

    d = StreamConfig()
    p = sub.add_parser("stream", help="live recognition of a file or of raw PCM on stdin: partial and final results")
    p.add_argument("model", type=Path, help="a streamable model file (unidirectional or LC-BLSTM)")
    p.add_argument("audio", nargs="?", default="-", help="audio file, or '-' (default) for raw 16-bit little-endian "
                   "mono PCM on stdin (ffmpeg -f s16le -ac 1 -, arecord -f S16_LE)")
    p.add_argument("--sample-rate", type=int, help=f"rate of the PCM on stdin (default {d.pcm_sample_rate})")
    p.add_argument("--realtime", action="store_true", help="feed a file no faster than real time")
    p.add_argument("--format", choices=["text", "json"], default="text", help="text: final results one per line, "
                   "partial ones on one updating stderr line; json: one Vosk-shaped object per event on stdout")
    p.add_argument("--method", choices=["greedy", "beam"], help=f"search (default {d.method}); beam takes the "
                   "beam options below, LM and lexicon included")
    p.add_argument("--endpoint-silence-ms", type=float, help="blank output this long after speech ends a segment "
                   f"(default {d.endpoint_silence_ms:g}; 0 = off)")
    p.add_argument("--max-segment", type=float, help=f"seconds after which a segment ends anyway (default "
                   f"{d.max_segment_s:g}; 0 = no limit)")
    p.add_argument("--partial-interval-ms", type=float, help=f"partial results at most this often (default "
                   f"{d.partial_interval_ms:g})")
    p.add_argument("--block-ms", type=float, help=f"audio fed per step (default {d.block_ms:g})")
    p.add_argument("--beam-size", "--beam", type=int, help="hypotheses kept per frame (default 16)")
    p.add_argument("--beam-threshold", type=float, help="prune hypotheses this far below the best (default 25)")
    p.add_argument("--lm", type=Path, help="KenLM model (ARPA or binary): words with --lexicon, else the model's units")
    p.add_argument("--lexicon", type=Path, help="WORD<TAB>UNITS file from 'asr lm lexicon'")
    p.add_argument("--lm-weight", type=float, help="LM weight (default 2.0)")
    p.add_argument("--word-score", type=float, help="score added per word, lexicon search only (default 0)")
    p.set_defaults(func=_stream)


def _stream(args) -> None:
    from .config import StreamConfig
    from .inference.stream import stream_audio

    given = dict(method=args.method, endpoint_silence_ms=args.endpoint_silence_ms, max_segment_s=args.max_segment,
                 partial_interval_ms=args.partial_interval_ms, block_ms=args.block_ms, pcm_sample_rate=args.sample_rate)
    beam = dict(beam_size=args.beam_size, beam_threshold=args.beam_threshold, lm=args.lm, lexicon=args.lexicon,
                lm_weight=args.lm_weight, word_score=args.word_score)
    beam = {k: v for k, v in beam.items() if v is not None}
    cfg = StreamConfig(**{k: v for k, v in given.items() if v is not None})
    if beam and cfg.method != "beam":
        raise ValueError(f"{', '.join(sorted(beam))}: only for --method beam")
    stream_audio(args.model, args.audio, cfg, args.format, args.realtime, **beam)


def main(argv: list[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"asr {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
