"""The ``asr`` command line: each subcommand parses arguments and calls one library function.

Every subcommand is one ``_add_NAME_parser(sub)`` function that registers its parser and sets
``func=_NAME``, a short handler. Option defaults are None; the library fills them from the
dataclasses of ``asr.config``, whose values the help texts show (``_option``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from .config import (AverageConfig, An4PrepareConfig, CalibrationConfig, CustomPrepareConfig, DataConfig,
                     DecodeConfig, ExportConfig, HotwordConfig, LibriSpeechPrepareConfig, LMBuildConfig, PackageConfig,
                     ScoreConfig, SearchConfig, SegmentConfig, ServerConfig, StreamConfig, TimitPrepareConfig,
                     TranscribeConfig, TuneConfig, ValidateConfig)

__all__ = ["main"]

log = logging.getLogger(__name__)


# ---- helpers -----------------------------------------------------------------------------------


def _option(p: argparse.ArgumentParser, *flags: str, cfg: type, name: str | None = None, help: str,
            default=None, **kwargs) -> argparse.Action:
    """An option for field ``name`` of dataclass ``cfg``: argparse default None, the help shows the field's."""
    name = name or flags[0].lstrip("-").replace("-", "_")
    value = getattr(cfg(), name)
    shown = " ".join(map(str, value)) if isinstance(value, (tuple, list)) else value
    text = help if value is None else f"{help} (default: {shown})"
    action = p.add_argument(*flags, dest=name, default=default, help=text, **kwargs)
    action.config_default = (cfg, name)  # checked by tests/test_defaults.py
    return action


def _flag(p: argparse.ArgumentParser, *flags: str, help: str) -> argparse.Action:
    """An on/off switch that is None unless given."""
    return p.add_argument(*flags, action="store_true", default=None, help=help)


def _given(args: argparse.Namespace, *names: str) -> dict:
    """The options among ``names`` given on the command line (not None)."""
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def _config(cls: type, args: argparse.Namespace):
    """``cls`` with the fields given on the command line, the dataclass defaults elsewhere."""
    return cls(**_given(args, *(f.name for f in dataclasses.fields(cls))))


_SEARCH_OPTIONS = tuple(f.name for f in dataclasses.fields(SearchConfig) if f.name != "method")


def _add_search_options(p: argparse.ArgumentParser, item: str) -> None:
    """The beam search and LM flags that `decode` and `transcribe` share (resolved by asr.decoding.resolve)."""
    _option(p, "--beam-size", "--beam", cfg=SearchConfig, type=int, help="beam, beam-lm: hypotheses kept per "
            "frame (beam-lm: tuned value first)")
    _option(p, "--beam-threshold", cfg=SearchConfig, type=float, help="beam, beam-lm: prune hypotheses this far "
            "below the best (beam-lm: tuned value first)")
    _option(p, "--nbest", cfg=SearchConfig, type=int, help=f"beam, beam-lm: hypotheses per {item} in the JSON output")
    _option(p, "--sil-score", cfg=SearchConfig, type=float, help="beam, beam-lm: score added per word separator")
    _option(p, "--lm", cfg=SearchConfig, type=Path, help="beam-lm: KenLM model (ARPA or binary), words or, without "
            "--lexicon, the model's units")
    _option(p, "--lexicon", cfg=SearchConfig, type=Path, help="beam-lm: WORD<TAB>UNITS file from 'asr lm lexicon'")
    _option(p, "--lm-weight", cfg=SearchConfig, type=float, help="beam-lm: LM weight (tuned value first)")
    _option(p, "--word-score", cfg=SearchConfig, type=float, help="beam-lm: score added per word, lexicon search "
            "only (tuned value first)")
    p.add_argument("--lm-params", type=Path, help="beam-lm: YAML from 'asr tune' that supplies every beam-lm "
                   "option not given here (default: lm-params.yaml next to MODEL, if it exists)")
    _option(p, "--hotwords", cfg=SearchConfig, type=Path, metavar="FILE", help="beam-lm with a lexicon: 'WORD "
            f"[BOOST]' lines; the words are favoured, and added when the lexicon lacks them (default boost "
            f"{HotwordConfig.boost})")
    _option(p, "--device", cfg=TranscribeConfig, help="where the model runs: cpu, cuda, cuda:N or auto")


def _add_shard_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shard", metavar="I/N", help="this job's share of the cuts, 0 <= I < N (job arrays; the job "
                   "that finds all N parts writes the merged result); under torchrun the processes share the cuts "
                   "without it")


def _reject_foreign_options(parser: argparse.ArgumentParser, args: argparse.Namespace, extra: list[str]) -> int:
    """Unknown arguments: for an option of a sibling corpus (``asr prepare timit --dev-fraction``) one
    line naming its owners and exit status 1; anything else is argparse's usage error."""
    siblings = getattr(args, "corpus_parsers", None)
    flags = [a.split("=", 1)[0] for a in extra if a.startswith("--")]
    owners = {f: [c for c, p in (siblings or {}).items() if f in p._option_string_actions] for f in flags}
    if siblings is None or not flags or not all(owners.values()):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    flag = flags[0]
    print(f"asr {args.command}: error: {flag}: {', '.join(owners[flag])} only, not for {args.corpus}", file=sys.stderr)
    return 1


# ---- download ------------------------------------------------------------------------------------


def _download_an4(args) -> None:
    from .data.corpora.an4 import download_an4

    print(download_an4(args.target_dir))


def _download_librispeech(args) -> None:
    from .data.corpora.librispeech import download_librispeech

    print(download_librispeech(args.target_dir, args.parts, bool(args.train_960)))


def _download_librispeech_lm(args) -> None:
    from .data.corpora.librispeech import download_librispeech_lm

    print(download_librispeech_lm(args.target_dir, **_given(args, "files")))


def _add_download_parser(sub) -> None:
    p = sub.add_parser("download", help="download a corpus (an4, librispeech) or the LibriSpeech LM resources")
    corpora = p.add_subparsers(dest="corpus", required=True, metavar="CORPUS")
    q = corpora.add_parser("an4", help="AN4 (CMU), 64 MB")
    q.add_argument("target_dir", type=Path)
    q.set_defaults(func=_download_an4)
    r = corpora.add_parser("librispeech", help="LibriSpeech parts (openslr SLR12)")
    r.add_argument("target_dir", type=Path)
    r.add_argument("--parts", nargs="+", metavar="PART", help="parts to fetch (default: train-clean-100, dev-clean, "
                   "dev-other, test-clean, test-other)")
    _flag(r, "--train-960", help="train-clean-360 and train-other-500 too")
    r.set_defaults(func=_download_librispeech)
    s = corpora.add_parser("librispeech-lm", help="the official n-grams, lexicon and LM text (openslr SLR11)")
    s.add_argument("target_dir", type=Path)
    s.add_argument("--files", nargs="+", metavar="NAME", help="file names (default: all six; files already in "
                   "TARGET_DIR are skipped)")
    s.set_defaults(func=_download_librispeech_lm)
    p.set_defaults(corpus_parsers={"an4": q, "librispeech": r, "librispeech-lm": s})


# ---- prepare -------------------------------------------------------------------------------------


def _prepare_an4(args) -> None:
    from .data.corpora.an4 import prepare_an4

    prepare_an4(args.corpus_dir, args.out_dir, **_given(args, "dev_fraction", "seed"))


def _prepare_timit(args) -> None:
    from .data.corpora.timit import prepare_timit, read_speaker_list

    lists = {k: read_speaker_list(v) for k, v in _given(args, "dev_speakers", "test_speakers").items()}
    prepare_timit(args.corpus_dir, args.out_dir, **_given(args, "phones"), **lists)


def _prepare_librispeech(args) -> None:
    from .data.corpora.librispeech import prepare_librispeech

    prepare_librispeech(args.corpus_dir, args.out_dir, args.parts, bool(args.train_960), **_given(args, "num_jobs"))


def _add_prepare_parser(sub) -> None:
    p = sub.add_parser("prepare", help="write lhotse cut manifests for a corpus (an4, timit, librispeech) or your "
                       "own data (kaldi, table, jsonl, folder, lhotse)")
    corpora = p.add_subparsers(dest="corpus", required=True, metavar="CORPUS")
    q = corpora.add_parser("an4", help="train/dev/test of AN4; dev: held-out training speakers")
    q.add_argument("corpus_dir", type=Path, help="the an4 directory, holding etc/ and wav/")
    q.add_argument("out_dir", type=Path)
    _option(q, "--dev-fraction", cfg=An4PrepareConfig, type=float, help="share of training speakers held out")
    _option(q, "--seed", cfg=An4PrepareConfig, type=int, help="picks the dev speakers")
    q.set_defaults(func=_prepare_an4)
    r = corpora.add_parser("timit", help="train/dev/test of TIMIT (dev: 50 speakers, test: the core test set)")
    r.add_argument("corpus_dir", type=Path, help="the TIMIT directory, holding TRAIN/ and TEST/")
    r.add_argument("out_dir", type=Path)
    _option(r, "--phones", cfg=TimitPrepareConfig, type=int, choices=[48, 61, 39], help="training phone set")
    r.add_argument("--dev-speakers", type=Path, metavar="FILE", help="dev speaker ids, one per line (default: the "
                   "standard 50)")
    r.add_argument("--test-speakers", type=Path, metavar="FILE", help="test speaker ids (default: the 24 of the "
                   "core test set)")
    r.set_defaults(func=_prepare_timit)
    s = corpora.add_parser("librispeech", help="LibriSpeech parts as they are")
    s.add_argument("corpus_dir", type=Path, help="the directory holding the parts (or LibriSpeech/)")
    s.add_argument("out_dir", type=Path)
    s.add_argument("--parts", nargs="+", metavar="PART", help="parts to prepare (default: train-clean-100, "
                   "dev-clean, dev-other, test-clean, test-other)")
    _flag(s, "--train-960", help="all three training parts, plus their union as librispeech_cuts_train-960.jsonl.gz")
    _option(s, "--num-jobs", cfg=LibriSpeechPrepareConfig, type=int, help="threads reading FLAC headers")
    s.set_defaults(func=_prepare_librispeech)
    parsers = {"an4": q, "timit": r, "librispeech": s}
    parsers.update(_add_custom_prepare_parsers(corpora))
    p.set_defaults(corpus_parsers=parsers)


_CUSTOM_OPTIONS = tuple(f.name for f in dataclasses.fields(CustomPrepareConfig))


def _custom_options(p: argparse.ArgumentParser, lhotse: bool = False) -> None:
    """The text, split and speed options every importer of data the toolkit did not write shares."""
    _option(p, "--corpus", cfg=CustomPrepareConfig, help="manifest names: CORPUS_cuts_SPLIT.jsonl.gz")
    if not lhotse:
        _option(p, "--split", cfg=CustomPrepareConfig, help="write everything as this one split (e.g. test); "
                "without it dev and test speakers are held out")
        _option(p, "--dev-fraction", cfg=CustomPrepareConfig, type=float, help="share of speakers held out as dev "
                "(utterances when speakers are unknown)")
        _option(p, "--test-fraction", cfg=CustomPrepareConfig, type=float, help="share held out as test")
        _option(p, "--seed", cfg=CustomPrepareConfig, type=int, help="picks the held-out speakers")
    rule = "; without it, the corpus's rule of asr.data.corpora.lhotse_recipes.CORPUS_TEXT, if any" if lhotse else ""
    _option(p, "--case", cfg=CustomPrepareConfig, choices=["keep", "upper", "lower"], help=f"transcript case{rule}")
    _option(p, "--remove-punct", cfg=CustomPrepareConfig, action="store_true", help="delete punctuation except "
            f"word-internal ' and -{rule}")
    _option(p, "--chars", cfg=CustomPrepareConfig, help="character whitelist: utterances with others are left "
            "out and counted (see CORPUS_chars.txt)")
    _option(p, "--num-jobs", cfg=CustomPrepareConfig, type=int, help="threads reading audio headers")


def _add_custom_prepare_parsers(corpora) -> dict[str, argparse.ArgumentParser]:
    k = corpora.add_parser("kaldi", help="a Kaldi data directory (wav.scp with paths or piped commands, text, "
                           "optional segments and utt2spk)")
    k.add_argument("data_dir", type=Path)
    k.add_argument("out_dir", type=Path, help="manifests; audio of piped wav.scp commands goes to OUT_DIR/audio")
    _custom_options(k)
    k.set_defaults(func=_prepare_kaldi)
    t = corpora.add_parser("table", help="a CSV/TSV of audio paths and transcripts (Common Voice TSVs, LJSpeech's "
                           "metadata.csv, a spreadsheet)")
    t.add_argument("table", type=Path)
    t.add_argument("out_dir", type=Path)
    t.add_argument("--audio", dest="audio_column", metavar="COL", required=True, help="audio path column: header "
                   "name or number (1 = first)")
    t.add_argument("--text", metavar="COL", required=True, help="transcript column")
    t.add_argument("--speaker", metavar="COL", help="speaker column (without it, dev/test hold out utterances)")
    t.add_argument("--root", type=Path, help="relative audio paths start here (default: the table's directory)")
    t.add_argument("--delimiter", help="field separator, 'tab' for tabs (default: tab for .tsv, else comma)")
    t.add_argument("--no-header", dest="header", action="store_false", default=None,
                   help="the first row is data; columns are numbers")
    t.add_argument("--audio-suffix", help="appended to every audio value (LJSpeech: .wav)")
    _custom_options(t)
    t.set_defaults(func=_prepare_table)
    j = corpora.add_parser("jsonl", help="NeMo-style JSON lines: audio_filepath, text, optional duration, offset, "
                           "speaker")
    j.add_argument("manifest", type=Path)
    j.add_argument("out_dir", type=Path)
    j.add_argument("--root", type=Path, help="relative audio paths start here (default: the manifest's directory)")
    _custom_options(j)
    j.set_defaults(func=_prepare_jsonl)
    f = corpora.add_parser("folder", help="audio files with a same-named .lab or .txt transcript beside each "
                           "(Montreal Forced Aligner layout; first subdirectory = speaker)")
    f.add_argument("folder", type=Path)
    f.add_argument("out_dir", type=Path)
    _custom_options(f)
    f.set_defaults(func=_prepare_folder)
    h = corpora.add_parser("lhotse", help="any lhotse.recipes.prepare_NAME corpus (commonvoice, tedlium, mls, ...)")
    h.add_argument("name", help="lhotse recipe name, e.g. commonvoice")
    h.add_argument("corpus_dir", type=Path)
    h.add_argument("out_dir", type=Path)
    h.add_argument("--opt", action="append", metavar="KEY=VALUE", help="keyword argument of lhotse's recipe, "
                   "e.g. languages=en, dataset_parts=[train, dev] (YAML values; repeatable)")
    _custom_options(h, lhotse=True)
    h.set_defaults(func=_prepare_lhotse)
    return {"kaldi": k, "table": t, "jsonl": j, "folder": f, "lhotse": h}


def _prepare_kaldi(args) -> None:
    from .data.corpora.custom import prepare_kaldi

    prepare_kaldi(args.data_dir, args.out_dir, _config(CustomPrepareConfig, args))


def _prepare_table(args) -> None:
    from .data.corpora.custom import prepare_table

    prepare_table(args.table, args.out_dir, args.audio_column, args.text, args.speaker,
                  cfg=_config(CustomPrepareConfig, args),
                  **_given(args, "root", "delimiter", "header", "audio_suffix"))


def _prepare_jsonl(args) -> None:
    from .data.corpora.custom import prepare_jsonl

    prepare_jsonl(args.manifest, args.out_dir, root=args.root, cfg=_config(CustomPrepareConfig, args))


def _prepare_folder(args) -> None:
    from .data.corpora.custom import prepare_folder

    prepare_folder(args.folder, args.out_dir, _config(CustomPrepareConfig, args))


def _prepare_lhotse(args) -> None:
    import yaml

    from .data.corpora.lhotse_recipes import prepare_lhotse

    options = {}
    for item in args.opt or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--opt {item!r}: expected KEY=VALUE")
        options[key] = yaml.safe_load(value)  # as config overrides: 4 -> int, [en, fr] -> list, en -> str
    prepare_lhotse(args.name, args.corpus_dir, args.out_dir, options, **_given(args, *_CUSTOM_OPTIONS))


# ---- validate ------------------------------------------------------------------------------------


def _validate(args) -> None:
    import json

    from .data.validate import validate_manifests

    units = {}
    if args.units_of is not None:
        from .model.files import load_units

        tokenizer, model_cfg = load_units(args.units_of)
        units = {"tokenizer": tokenizer, "features": model_cfg.features, "subsampling": model_cfg.subsampling.factor}
    report = validate_manifests(args.cuts, cfg=_config(ValidateConfig, args), fix_dir=args.fix,
                                on_problem=lambda p: print(p, file=sys.stderr), **units,
                                **_given(args, "max_utt_duration"))
    print(report.table())
    if args.report is not None:
        args.report.write_text(json.dumps(report.to_json(), indent=1) + "\n")
    if report.num_errors:
        raise ValueError(f"{report.num_errors} error(s), see above" + (f"; fixed manifests in {args.fix}"
                                                                      if args.fix else ""))


def _add_validate_parser(sub) -> None:
    p = sub.add_parser("validate", help="check cut manifests before training (audio, transcripts, CTC lengths, "
                       "units, speakers); exit status 1 on errors")
    p.add_argument("cuts", type=Path, nargs="+", metavar="CUTS", help="manifests, training set first (speakers of "
                   "the others are looked up in it)")
    p.add_argument("--units", dest="units_of", type=Path, metavar="MODEL_OR_TOKENIZER", help="model file or "
                   "folder, tokenizer.json or sentencepiece .model: check characters and CTC lengths against its "
                   "units and frame rate")
    p.add_argument("--fix", type=Path, metavar="OUT_DIR", help="write each manifest without its broken cuts here")
    p.add_argument("--report", type=Path, metavar="JSON", help="write the summary and the problems as JSON")
    _option(p, "--audio", cfg=ValidateConfig, name="audio_check", choices=["none", "exists", "header", "decode"],
            help="audio checks")
    _option(p, "--duration-tolerance", cfg=ValidateConfig, type=float, help="seconds a cut may pass its file's end")
    _option(p, "--num-jobs", cfg=ValidateConfig, type=int, help="threads checking audio")
    _option(p, "--max-utt-duration", cfg=DataConfig, type=float, help="longer cuts are reported (training drops "
            "them)")
    p.set_defaults(func=_validate)


# ---- train, average ------------------------------------------------------------------------------


def _train(args) -> None:
    from .config import load_config
    from .training.loop import TrainingStopped, train

    cfg = load_config(args.config, args.overrides)
    try:
        train(cfg, args.train, args.dev, args.exp_dir)
    except TrainingStopped as stopped:
        log.warning("%s", stopped)
        sys.exit(128 + stopped.signum)


def _add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a CTC model (resumes automatically)")
    p.add_argument("--config", type=Path, help="YAML file of TrainConfig values")
    p.add_argument("--train", type=Path, required=True, help="training cut manifest")
    p.add_argument("--dev", type=Path, required=True, help="dev cut manifest")
    p.add_argument("--exp-dir", type=Path, required=True)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. model.encoder.cell=gru epochs=10")
    p.set_defaults(func=_train)


def _average(args) -> None:
    from .model.checkpoint import average_checkpoints, list_checkpoints, save_atomic

    paths = list_checkpoints(args.exp_dir)[-_config(AverageConfig, args).last:]
    save_atomic(average_checkpoints(paths), args.out)
    log.info("wrote %s", args.out)


def _add_average_parser(sub) -> None:
    p = sub.add_parser("average", help="average the last K epoch checkpoints into a model file")
    p.add_argument("exp_dir", type=Path)
    _option(p, "--last", cfg=AverageConfig, type=int, help="epoch checkpoints averaged")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_average)


# ---- LM, tuning ----------------------------------------------------------------------------------


def _lm_build(args) -> None:
    from .decoding.lm import build_lm

    tokenizer = None
    if args.units_of is not None:
        from .model.checkpoint import load_model

        tokenizer = load_model(args.units_of)[1]
    build_lm(args.text, args.out, prune_singletons=bool(args.prune_singletons), kaldi=bool(args.kaldi),
             tokenizer=tokenizer, **_given(args, "order"))


def _lm_lexicon(args) -> None:
    from .decoding.lexicon import lexicon_from_words
    from .model.checkpoint import load_model

    lexicon_from_words(load_model(args.model)[1], args.out, args.arpa, args.text, bool(args.kaldi))


def _add_lm_parser(sub) -> None:
    p = sub.add_parser("lm", help="n-gram language models and lexicons for beam-lm decoding")
    lm_sub = p.add_subparsers(dest="lm_command", required=True, metavar="LM_COMMAND")
    q = lm_sub.add_parser("build", help="interpolated modified Kneser-Ney n-gram -> ARPA")
    _option(q, "--order", cfg=LMBuildConfig, type=int, help="n-gram order")
    q.add_argument("--text", type=Path, required=True, help="one sentence per line (.gz allowed)")
    q.add_argument("--out", type=Path, required=True, help="ARPA file to write")
    _flag(q, "--prune-singletons", help="drop n-grams (order >= 2) seen once")
    _flag(q, "--kaldi", help="TEXT is Kaldi text: drop each line's first field")
    q.add_argument("--units-of", type=Path, metavar="MODEL", help="spell the text in MODEL's units: an LM "
                   "for lexicon-free beam-lm decoding")
    q.set_defaults(func=_lm_build)
    q = lm_sub.add_parser("lexicon", help="spell the words of an LM or text in a model's units")
    q.add_argument("model", type=Path)
    q.add_argument("--out", type=Path, required=True, help="lexicon file; unspellable words go to "
                   "OUT with suffix .unspellable.txt")
    source = q.add_mutually_exclusive_group(required=True)
    source.add_argument("--lm", type=Path, dest="arpa", help="take the words from this ARPA file's unigrams")
    source.add_argument("--text", type=Path, help="take the words from this text file")
    _flag(q, "--kaldi", help="TEXT is Kaldi text: drop each line's first field")
    q.set_defaults(func=_lm_lexicon)


def _tune(args) -> None:
    from .inference.tuning import tune_files

    tune_files(args.model, args.cuts, args.lm, args.lexicon, args.out, _config(TuneConfig, args),
               **_given(args, "beam_threshold", "num_workers", "max_duration", "device", "shard"))


def _add_tune_parser(sub) -> None:
    p = sub.add_parser("tune", help="search LM weight and word score on a dev set; writes lm-params.yaml")
    p.add_argument("model", type=Path)
    p.add_argument("cuts", type=Path, help="dev cut manifest")
    _option(p, "--lm", cfg=SearchConfig, type=Path, required=True, help="KenLM model (ARPA or binary)")
    _option(p, "--lexicon", cfg=SearchConfig, type=Path, help="omit for lexicon-free search with a unit LM")
    _option(p, "--search", cfg=TuneConfig, choices=["grid", "random"], help="how points are chosen")
    _option(p, "--lm-weight-range", cfg=TuneConfig, type=float, nargs=2, metavar=("LO", "HI"), help="LM weights")
    _option(p, "--word-score-range", cfg=TuneConfig, type=float, nargs=2, metavar=("LO", "HI"), help="word scores")
    _option(p, "--points", cfg=TuneConfig, type=int, help="grid: values per axis")
    _option(p, "--trials", cfg=TuneConfig, type=int, help="random: points drawn")
    _option(p, "--seed", cfg=TuneConfig, type=int, help="random: seed")
    _option(p, "--beam-size", "--beam", cfg=TuneConfig, type=int, help="hypotheses kept per frame while tuning")
    _option(p, "--select", cfg=TuneConfig, choices=["smooth", "lowest"], help="which point wins: lowest WER pooled "
            "with its grid neighbours (the middle of a plateau), or the lowest WER alone")
    _option(p, "--beam-threshold", cfg=SearchConfig, type=float, help="prune hypotheses this far below the best")
    _option(p, "--num-workers", cfg=DecodeConfig, type=int, help="processes sharing the points (0: none)")
    _option(p, "--max-duration", cfg=DecodeConfig, type=float, help="seconds of audio per batch")
    _option(p, "--device", cfg=TranscribeConfig, help="where the model runs: cpu, cuda, cuda:N or auto (under "
            "torchrun, cuda is each process's own GPU)")
    _add_shard_option(p)
    p.add_argument("--out", type=Path, help="default: lm-params.yaml next to MODEL, read by 'asr decode'")
    p.set_defaults(func=_tune)


# ---- decode, score -------------------------------------------------------------------------------


def _decode(args) -> None:
    from .inference.recognizer import decode

    decode(args.model, args.cuts, args.out_dir, args.method or (SearchConfig.method,),
           _given(args, *_SEARCH_OPTIONS), args.lm_params, **_given(args, "name", "max_duration", "num_workers",
                                                                    "device", "shard"))


def _add_decode_parser(sub) -> None:
    p = sub.add_parser("decode", help="decode a cut manifest; writes hyp-NAME-METHOD.{txt,jsonl}")
    p.add_argument("model", type=Path)
    p.add_argument("cuts", type=Path)
    p.add_argument("--out-dir", type=Path, required=True)
    _option(p, "--name", cfg=DecodeConfig, help="set name used in output file names")
    _option(p, "--method", cfg=SearchConfig, nargs="+", choices=["greedy", "beam", "beam-lm"],
            help="one or more; beam: lexicon-free, no LM; beam-lm: with --lm and/or --lexicon")
    _add_search_options(p, "utterance")
    _option(p, "--num-workers", cfg=DecodeConfig, type=int, help="processes for the beam search (0: none)")
    _option(p, "--max-duration", cfg=DecodeConfig, type=float, help="seconds of audio per batch")
    _add_shard_option(p)
    p.set_defaults(func=_decode)


def _score(args) -> None:
    from .scoring.normalize import Normalizer

    if args.ref is None:
        raise ValueError("--ref is required")
    normalizer = Normalizer(**_given(args, "case", "remove_punct", "split_hyphens", "mapping", "fold"))
    if args.score_command == "compare":
        from .scoring.stats import compare_files

        result = compare_files(args.ref, args.hyp_a, args.hyp_b, utt2spk=args.utt2spk, normalizer=normalizer,
                               out_dir=args.out_dir, **_given(args, "unit", "n_boot", "seed"))
        print(result.report(), end="")
        return
    if not args.hyp or args.out_dir is None:
        raise ValueError("--hyp and --out-dir are required (or use 'asr score compare A B --ref REF')")
    from .scoring.report import score_files

    for line in score_files(args.ref, args.hyp, args.out_dir, utt2spk=args.utt2spk, normalizer=normalizer,
                            **_given(args, "units", "html")):
        print(line)


def _add_score_parser(sub) -> None:
    p = sub.add_parser("score", help="WER/CER/PER with sclite's counts and reports; 'score compare A B' "
                       "tests two systems", description="asr score --ref REF --hyp HYP... --out-dir DIR, or "
                       "asr score compare HYP_A HYP_B --ref REF: bootstrap intervals and paired tests.")
    p.add_argument("--hyp", type=Path, nargs="+", help="hypothesis files (Kaldi text, trn or JSONL)")
    _option(p, "--units", cfg=ScoreConfig, nargs="+", choices=["word", "char", "phone"], help="units scored")
    _option(p, "--html", cfg=ScoreConfig, action=argparse.BooleanOptionalAction,
            help="write report.html with plots (--no-html: skip it, and matplotlib)")
    q = p.add_subparsers(dest="score_command", metavar="compare").add_parser(
        "compare", help="bootstrap 95%% intervals, paired bootstrap and MAPSSWE tests of B against A")
    q.add_argument("hyp_a", type=Path)
    q.add_argument("hyp_b", type=Path)
    _option(q, "--unit", cfg=ScoreConfig, choices=["word", "char", "phone"], help="the unit compared")
    _option(q, "--bootstrap", cfg=ScoreConfig, name="n_boot", type=int, help="resamples")
    _option(q, "--seed", cfg=ScoreConfig, type=int, help="seed of the resampling")
    for parser_, later in ((p, False), (q, True)):
        # shared options: the compare copies default to SUPPRESS so that options given before 'compare' stay
        keep = argparse.SUPPRESS if later else None
        parser_.add_argument("--ref", type=Path, default=keep, help="Kaldi text, trn or JSONL (required)")
        parser_.add_argument("--out-dir", type=Path, default=keep,
                             help="report directory (score: required; compare: optional)")
        parser_.add_argument("--utt2spk", type=Path, default=keep, help="'uttid speaker' lines (default: "
                             "sclite's trn convention, the id up to its first '-', else '_')")
        _option(parser_, "--case", cfg=ScoreConfig, choices=["keep", "lower", "upper"], default=keep,
                help="case folding of both sides")
        _option(parser_, "--remove-punct", cfg=ScoreConfig, action="store_true", default=keep,
                help="delete punctuation except word-internal ' and -")
        _option(parser_, "--split-hyphens", cfg=ScoreConfig, action="store_true", default=keep,
                help="split words at hyphens")
        parser_.add_argument("--mapping", type=Path, default=keep,
                             help="GLM-like file of 'LEFT => RIGHT' rules applied to both sides")
        parser_.add_argument("--fold", choices=["timit39"], default=keep,
                             help="phone folding for the phone unit (TIMIT 61 -> 39)")
    p.set_defaults(func=_score)


# ---- transcribe, export, analysis -----------------------------------------------------------------


def _transcribe(args) -> None:
    from .inference.recognizer import transcribe

    summary = transcribe(args.model, args.audio, args.list, output_dir=args.output_dir,
                         method=args.method or SearchConfig.method, search_options=_given(args, *_SEARCH_OPTIONS),
                         lm_params=args.lm_params, threads=args.threads, channel=args.channel,
                         segment=_config(SegmentConfig, args), progress=args.progress,
                         on_error=lambda line: print(f"asr transcribe: error: {line}", file=sys.stderr, flush=True),
                         **_given(args, "formats", "batch_size", "device"))
    print(f"asr transcribe: {summary.line()}", file=sys.stderr)
    if summary.failed:
        raise ValueError(f"{len(summary.failed)} input(s) failed, see above")


def _add_transcribe_parser(sub) -> None:
    p = sub.add_parser("transcribe", help="transcribe audio files of any format, rate and length; text to stdout")
    p.add_argument("model", type=Path)
    p.add_argument("audio", nargs="*", help="audio files, directories (searched recursively) or glob patterns")
    p.add_argument("--list", type=Path, help="file with one more input per line")
    _option(p, "--format", "-f", cfg=TranscribeConfig, name="formats", nargs="+", choices=["txt", "json", "srt", "vtt"],
            help="txt goes to stdout (PATH<TAB>TEXT per file when there are several) unless --output-dir is "
            "given; the others are written next to each input or into --output-dir")
    p.add_argument("--output-dir", "-o", type=Path, help="write NAME.FORMAT files here (directory inputs keep "
                   "their tree)")
    _option(p, "--method", cfg=SearchConfig, choices=["greedy", "beam", "beam-lm"],
            help="beam: lexicon-free, no LM; beam-lm: with --lm and/or --lexicon (as in 'asr decode')")
    _add_search_options(p, "segment")
    p.add_argument("--channel", type=int, help="transcribe this channel (0-based) instead of the average of all")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    _option(p, "--batch-size", cfg=TranscribeConfig, type=int, help="segments per forward pass")
    _option(p, "--max-segment", cfg=SegmentConfig, type=float, help="longer files are split on silence into "
            "segments of at most this many seconds")
    _option(p, "--min-silence", cfg=SegmentConfig, type=float, help="long files: a pause this long (s) ends a segment")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: on a terminal only)")
    p.set_defaults(func=_transcribe)


def _diagnose(args) -> None:
    from .analysis.diagnose import diagnose, load_models

    diagnose(load_models(args.models, args.labels), args.audio, args.out_dir)


def _add_diagnose_parser(sub) -> None:
    p = sub.add_parser("diagnose", help="gradient norm vs lag and gate activations of models on audio files")
    p.add_argument("models", type=Path, nargs="+", metavar="MODEL", help="float models: .pt files, training "
                   "checkpoints or safetensors folders")
    p.add_argument("--audio", type=Path, nargs="+", required=True, metavar="FILE")
    p.add_argument("--out-dir", type=Path, required=True, help="gets gradient_lag.{json,png}, gates.json and "
                   "gates_LABEL.png per gated model")
    p.add_argument("--labels", nargs="+", metavar="LABEL", help="one name per model (default: the model's "
                   "directory name, the run's for EXP/checkpoints/*.pt)")
    p.set_defaults(func=_diagnose)


def _curves(args) -> None:
    from .training.curves import plot_curves

    plot_curves(args.exp_dirs, args.out, args.labels)


def _add_curves_parser(sub) -> None:
    p = sub.add_parser("curves", help="plot train loss, dev loss and dev WER per epoch from runs' log.csv")
    p.add_argument("exp_dirs", type=Path, nargs="+", metavar="EXP_DIR")
    p.add_argument("--out", type=Path, required=True, help="PNG to write; the numbers go to OUT with suffix .json")
    p.add_argument("--labels", nargs="+", metavar="LABEL", help="one name per run (default: directory names)")
    p.set_defaults(func=_curves)


def _calibrate(args) -> None:
    from .decoding.confidence import calibrate_files

    calibrate_files(args.model, args.dev_cuts, args.out, _config(CalibrationConfig, args), args.test,
                    args.report_dir, **_given(args, "max_duration"))


def _add_calibrate_parser(sub) -> None:
    p = sub.add_parser("calibrate", help="fit a word-confidence calibration on a dev set; writes calibration.json")
    p.add_argument("model", type=Path)
    p.add_argument("dev_cuts", type=Path, help="dev cut manifest (greedy words are labelled by alignment to "
                   "the references)")
    p.add_argument("--out", type=Path, help="JSON file to write (default: calibration.json next to MODEL, where "
                   "'asr transcribe' and asr.Recognizer find it)")
    _option(p, "--method", cfg=CalibrationConfig, choices=["auto", "temperature", "platt", "isotonic"],
            help="mapping of the confidence (auto: the lowest ECE on held-out dev utterances)")
    _option(p, "--bins", cfg=CalibrationConfig, type=int, help="confidence bins of the ECE and diagrams")
    _option(p, "--held-out", cfg=CalibrationConfig, type=float, help="auto: share of dev utterances that scores "
            "the methods")
    _option(p, "--seed", cfg=CalibrationConfig, type=int, help="auto: picks the held-out utterances")
    p.add_argument("--test", type=Path, metavar="CUTS", help="also report ECE before/after on this manifest")
    p.add_argument("--report-dir", type=Path, help="write calibration-{dev,test}.txt and reliability-{dev,test}.png")
    _option(p, "--max-duration", cfg=DecodeConfig, type=float, help="seconds of audio per batch")
    p.set_defaults(func=_calibrate)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asr", description="Recurrent CTC speech recognition.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_download_parser(sub)
    _add_prepare_parser(sub)
    _add_validate_parser(sub)
    _add_train_parser(sub)
    _add_average_parser(sub)
    _add_decode_parser(sub)
    _add_lm_parser(sub)
    _add_tune_parser(sub)
    _add_score_parser(sub)
    _add_transcribe_parser(sub)
    _add_export_parser(sub)
    _add_diagnose_parser(sub)
    _add_curves_parser(sub)
    _add_calibrate_parser(sub)
    _add_package_parser(sub)
    _add_stream_parser(sub)
    _add_serve_parser(sub)
    return parser


def _export(args) -> None:
    from .inference.export import export_model

    export_model(args.model, args.out, **_given(args, "format", "int8", "opset"))


def _add_export_parser(sub) -> None:
    p = sub.add_parser("export", help="write a TorchScript or ONNX model (optionally int8) that runs without "
                       "this package")
    p.add_argument("model", type=Path, help="model file (.pt) or float safetensors model folder")
    p.add_argument("--out", type=Path, required=True, help="file to write (e.g. model.ts, model.onnx)")
    _option(p, "--format", cfg=ExportConfig, choices=["torchscript", "onnx"], help="torchscript: runs with torch "
            "alone; onnx: log-mel frames in, log-probs out, under onnxruntime")
    _option(p, "--int8", cfg=ExportConfig, action="store_true", help="dynamic int8 quantization of the recurrent "
            "and linear layers (PyTorch's for torchscript, onnxruntime's for onnx)")
    _option(p, "--opset", cfg=ExportConfig, type=int, help="ONNX opset")
    p.set_defaults(func=_export)


def _package(args) -> None:
    from .inference.package import package_model

    package_model(args.source, args.out, lm=args.lm, lexicon=args.lexicon, lm_params=args.lm_params,
                  train_cuts=args.train_cuts, results=args.results, **_given(args, "weights", "int8"))


def _add_package_parser(sub) -> None:
    p = sub.add_parser("package", help="write a model folder (config.json, safetensors or ONNX weights, "
                       "tokenizer, LM, model card) that Recognizer.from_pretrained loads")
    p.add_argument("source", type=Path, metavar="EXP_OR_MODEL", help="experiment directory (its model.pt), "
                   "model file, or float model folder")
    p.add_argument("--out", type=Path, required=True, help="model folder to write (replaced if it is one)")
    _option(p, "--weights", cfg=PackageConfig, choices=["safetensors", "onnx"], help="weights file format")
    _option(p, "--int8", cfg=PackageConfig, action="store_true", help="dynamic int8 weights (about a quarter of "
            "the size)")
    _option(p, "--lm", cfg=SearchConfig, type=Path, help="KenLM file for beam-lm search, copied into the folder")
    _option(p, "--lexicon", cfg=SearchConfig, type=Path, help="lexicon from 'asr lm lexicon', copied into the "
            "folder")
    p.add_argument("--lm-params", type=Path, help="tuned values from 'asr tune'; also names the LM and lexicon "
                   "unless given (default: lm-params.yaml next to the model, if it exists)")
    p.add_argument("--train-cuts", type=Path, help="training manifest: corpus, hours and licence for the card")
    p.add_argument("--results", type=Path, help="Markdown WER table for the card (default: decode/results.md "
                   "next to the model, if it exists)")
    p.set_defaults(func=_package)


def _add_stream_options(p: argparse.ArgumentParser) -> None:
    """The search and endpointing flags that `stream` and `serve` share."""
    _option(p, "--method", cfg=SearchConfig, choices=["greedy", "beam", "beam-lm"],
            help="beam: lexicon-free, no LM; beam-lm: with --lm and/or --lexicon (as in 'asr transcribe')")
    _add_search_options(p, "segment")
    _option(p, "--endpoint-silence-ms", cfg=StreamConfig, type=float, help="blank output this long after speech "
            "ends a segment (0 = off)")
    _option(p, "--max-segment", cfg=StreamConfig, name="max_segment_s", type=float, help="seconds after which a "
            "segment ends anyway (0 = no limit)")
    _option(p, "--partial-interval-ms", cfg=StreamConfig, type=float, help="partial results at most this often")


def _add_stream_parser(sub) -> None:
    p = sub.add_parser("stream", help="live recognition of a file or of raw PCM on stdin: partial and final results")
    p.add_argument("model", type=Path, help="a streamable model (unidirectional or LC-BLSTM): folder, file or hub id")
    p.add_argument("audio", nargs="?", help="audio file, or '-' (the default) for raw 16-bit little-endian "
                   "mono PCM on stdin (ffmpeg -f s16le -ac 1 -, arecord -f S16_LE)")
    _option(p, "--sample-rate", cfg=StreamConfig, name="pcm_sample_rate", type=int, help="rate of the PCM on stdin")
    _flag(p, "--realtime", help="feed a file no faster than real time")
    p.add_argument("--format", dest="fmt", choices=["text", "json"], help="text (default): final results one per line, "
                   "partial ones on one updating stderr line; json: one Vosk-shaped object per event on stdout")
    _add_stream_options(p)
    _option(p, "--block-ms", cfg=StreamConfig, type=float, help="audio fed per step")
    p.set_defaults(func=_stream)


def _stream(args) -> None:
    from .inference.stream import stream_audio

    stream_audio(args.model, args.audio or "-", _config(StreamConfig, args), realtime=bool(args.realtime),
                 method=args.method or SearchConfig.method, lm_params=args.lm_params,
                 **_given(args, *_SEARCH_OPTIONS, "device", "fmt"))


def _add_serve_parser(sub) -> None:
    p = sub.add_parser("serve", help="a web page, POST /transcribe and the Vosk WebSocket protocol (live partial and "
                       "final results) on one port")
    p.add_argument("model", type=Path, help="a model: folder, file or hub id; live recognition needs a streamable one "
                   "(unidirectional or LC-BLSTM), the page and uploads take any")
    _option(p, "--host", cfg=ServerConfig, help="address to listen on")
    _option(p, "--port", cfg=ServerConfig, type=int, help="port to listen on (0: a free one, logged)")
    _option(p, "--sample-rate", cfg=ServerConfig, type=int, help="PCM rate of clients that send no config")
    _option(p, "--max-sessions", cfg=ServerConfig, type=int, help="open connections at most")
    _option(p, "--max-frame-bytes", cfg=ServerConfig, type=int, help="largest message accepted")
    _option(p, "--max-frames-per-audio-s", cfg=ServerConfig, type=float, help="frames per second of audio a "
            "session may send (a flood of tiny frames is refused)")
    _option(p, "--idle-timeout-s", cfg=ServerConfig, type=float, help="close a session silent this long (0: never)")
    _option(p, "--min-step-ms", cfg=ServerConfig, type=float, help="audio buffered before the model runs")
    _option(p, "--workers", cfg=ServerConfig, type=int, help="threads running batches of model steps")
    _option(p, "--torch-threads", cfg=ServerConfig, type=int, help="torch threads per model step")
    _option(p, "--max-batch", cfg=ServerConfig, type=int, help="sessions' model steps run as one batch at most")
    _option(p, "--batch-wait-ms", cfg=ServerConfig, type=float, help="longest wait of a model step for others to "
            "batch with (0: batch only the steps that queued while the workers were busy)")
    _option(p, "--token", cfg=ServerConfig, help="required on the page (open the address printed), the WebSocket "
            "(?token=) and uploads; set it when the server listens beyond the loopback")
    _option(p, "--max-upload-bytes", cfg=ServerConfig, type=int, help="largest POST /transcribe body")
    _option(p, "--max-upload-s", cfg=ServerConfig, type=float, help="longest audio of one upload (seconds)")
    _option(p, "--max-transcriptions", cfg=ServerConfig, type=int, help="uploads transcribed at once (more: 503)")
    _option(p, "--phrase-lm-weight", cfg=ServerConfig, type=float, help="LM weight of a client's phrase_list")
    _option(p, "--phrase-word-score", cfg=ServerConfig, type=float, help="score per word of a client's phrase_list")
    _add_stream_options(p)
    p.set_defaults(func=_serve)


def _serve(args) -> None:
    from .inference.server import serve

    serve(args.model, _config(ServerConfig, args), _config(StreamConfig, args), method=args.method or
          SearchConfig.method, lm_params=args.lm_params, **_given(args, *_SEARCH_OPTIONS, "device"))


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        return _reject_foreign_options(parser, args, extra)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"asr {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
