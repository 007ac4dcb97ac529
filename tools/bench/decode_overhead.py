"""Beam-search time per utterance against beam size, and the overhead of ``asr.decoding.search.BeamSearch``.

The model runs once over the cuts; the log-probs are kept and every measurement re-runs only the
search on them, in the batches ``decode_cuts`` makes. For each beam size it times

* bare: torchaudio's ``ctc_decoder`` object called on the batch (what ``BeamSearch`` wraps), and
* ours: ``BeamSearch.__call__`` with word times (separator frame, n-best, hypothesis building),

best of ``--repeats`` runs, and prints the %WER of our hypotheses. With ``--workers`` it also
times the same search split over that many worker processes.

    python tools/bench/decode_overhead.py MODEL CUTS --lm LM.arpa --lexicon LEXICON --lm-weight 1.25 \\
        --word-score 0.5 --beams 1 4 16 50 200
"""

from __future__ import annotations

import argparse
import logging
import time

import torch

from asr.model.checkpoint import load_model
from asr.data.cuts import FeatureBatcher, eval_batches, load_cuts
from asr.decoding.search import BeamSearch, frame_shift, process_pool
from asr.scoring.score import score

log = logging.getLogger("decode_overhead")

_search = None


def _init(options: dict) -> None:
    global _search
    from asr.data.tokenizer import tokenizer_from_dict

    torch.set_num_threads(1)
    options = dict(options)
    _search = BeamSearch(tokenizer_from_dict(options.pop("tokenizer")), **options)


def _run(batch: tuple[torch.Tensor, torch.Tensor]) -> list:
    return _search(*batch)


@torch.no_grad()
def log_probs_of(model, cuts, max_duration: float) -> list[tuple[list[str], list[str], torch.Tensor, torch.Tensor]]:
    """(ids, refs, log_probs (B, T, V) float32, lens (B,) int32) per batch."""
    model.eval()
    batcher = FeatureBatcher(model.cfg.features)
    batches = []
    for batch_cuts in eval_batches(cuts, max_duration):
        batch = batcher(batch_cuts)
        log_probs, lens = model(batch.feats, batch.feat_lens)
        batches.append((batch.ids, batch.texts, log_probs.float().contiguous(), lens.to(torch.int32)))
    return batches


def best_times(fns: list, repeats: int) -> list[float]:
    """Best wall time of each function, run in turn ``repeats`` times (turns share any load drift)."""
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, spent in zip(fns, times):
            start = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - start)
    return [min(spent) for spent in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("cuts")
    parser.add_argument("--lm")
    parser.add_argument("--lexicon")
    parser.add_argument("--lm-weight", type=float, default=2.0)
    parser.add_argument("--word-score", type=float, default=0.0)
    parser.add_argument("--beams", type=int, nargs="+", default=[1, 4, 16, 50, 200])
    parser.add_argument("--beam-threshold", type=float, default=25.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=0, help="also time the search over this many processes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the model pass")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    torch.set_num_threads(args.threads)
    model, tokenizer = load_model(args.model)
    batches = log_probs_of(model, load_cuts(args.cuts), 200.0)
    utts = sum(len(b[0]) for b in batches)
    refs = {i: r for ids, texts, _, _ in batches for i, r in zip(ids, texts)}
    log.warning("%d utterances, lm=%s lexicon=%s lm_weight=%s word_score=%s", utts, args.lm, args.lexicon,
                args.lm_weight, args.word_score)
    log.warning("%6s %12s %12s %9s %7s%s", "beam", "bare ms/utt", "ours ms/utt", "ours/bare", "%WER",
                f" {args.workers} workers ms/utt" if args.workers else "")
    for beam in args.beams:
        options = dict(beam_size=beam, beam_threshold=args.beam_threshold, lexicon=args.lexicon, lm=args.lm,
                       lm_weight=args.lm_weight, word_score=args.word_score, frame_shift=frame_shift(model))
        search = BeamSearch(tokenizer, **options)
        hyps = {}

        def ours() -> None:
            for ids, _, lp, lens in batches:
                hyps.update(zip(ids, (h.text for h in search(lp, lens))))

        def bare() -> None:
            for _, _, lp, lens in batches:
                search.decoder(lp, lens)

        bare_s, ours_s = best_times([bare, ours], args.repeats)
        wer = score(refs, hyps, "word").err_rate
        extra = ""
        if args.workers:
            parts = [(lp[i : i + 8], lens[i : i + 8]) for _, _, lp, lens in batches for i in range(0, len(lens), 8)]
            with process_pool(args.workers, _init, ({**options, "tokenizer": tokenizer.to_dict()},)) as pool:
                pool.map(_run, parts[: args.workers])  # build the searches first
                pooled = best_times([lambda: pool.map(_run, parts, chunksize=1)], args.repeats)[0]
            extra = f" {1000 * pooled / utts:17.2f}"
        log.warning("%6d %12.2f %12.2f %9.3f %7.2f%s", beam, 1000 * bare_s / utts, 1000 * ours_s / utts,
                    ours_s / bare_s, wer, extra)


if __name__ == "__main__":
    main()
