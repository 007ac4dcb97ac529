"""The ``asr`` command line: each subcommand parses arguments and calls one library function."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

__all__ = ["main"]

log = logging.getLogger("asr")


def _download(args) -> None:
    from .corpora.an4 import download_an4

    print(download_an4(args.target_dir))


def _prepare(args) -> None:
    from .corpora.an4 import prepare_an4

    prepare_an4(args.corpus_dir, args.out_dir, dev_fraction=args.dev_fraction, seed=args.seed)


def _train(args) -> None:
    from .config import load_config
    from .train import train

    cfg = load_config(args.config, args.overrides)
    train(cfg, args.train, args.dev, args.exp_dir)


def _average(args) -> None:
    from .checkpoint import average_checkpoints, list_checkpoints, save_atomic

    paths = list_checkpoints(args.exp_dir)[-args.last:]
    save_atomic(average_checkpoints(paths), args.out)
    log.info("wrote %s", args.out)


def _decode(args) -> None:
    from .checkpoint import load_model
    from .data import load_cuts
    from .decode import decode_cuts, write_hypotheses

    model, tokenizer = load_model(args.model)
    cuts = load_cuts(args.cuts)
    for method in args.method:
        results = list(decode_cuts(model, tokenizer, cuts, method, args.beam_size, args.max_duration))
        path = write_hypotheses(results, args.out_dir, f"{args.name}-{method}")
        log.info("wrote %s", path)


def _score(args) -> None:
    from .score import score_files

    for line in score_files(args.ref, args.hyp, args.out_dir, tuple(args.units)):
        print(line)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asr", description="Recurrent CTC speech recognition.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("download", help="download a corpus (an4)")
    p.add_argument("corpus", choices=["an4"])
    p.add_argument("target_dir", type=Path)
    p.set_defaults(func=_download)

    p = sub.add_parser("prepare", help="write lhotse cut manifests for a corpus (an4)")
    p.add_argument("corpus", choices=["an4"])
    p.add_argument("corpus_dir", type=Path, help="corpus directory (holding etc/ and wav/ for an4)")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--dev-fraction", type=float, default=0.07, help="share of training speakers held out")
    p.add_argument("--seed", type=int, default=0, help="picks the dev speakers")
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
    p.add_argument("--method", nargs="+", choices=["greedy", "beam"], default=["greedy"])
    p.add_argument("--beam-size", type=int, default=16)
    p.add_argument("--max-duration", type=float, default=200.0, help="seconds of audio per batch")
    p.set_defaults(func=_decode)

    p = sub.add_parser("score", help="WER/CER of hypotheses against references")
    p.add_argument("--ref", type=Path, required=True, help="Kaldi text, trn or JSONL")
    p.add_argument("--hyp", type=Path, nargs="+", required=True)
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--units", nargs="+", choices=["word", "char"], default=["word", "char"])
    p.set_defaults(func=_score)
    return parser


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
