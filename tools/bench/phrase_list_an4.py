"""Vosk's ``phrase_list`` on AN4: what restricting recognition to listed phrases does to the word error rate.

The model runs once over the dev and test cuts; then, on the same log-probs, each system decodes:

- ``greedy`` and, with ``--lm-params`` (from ``asr tune``), the usual ``beam-lm`` (word n-gram of the training text);
- ``phrases: SET sentences``: ``asr.decoding.phrases.PhraseSearch`` over the SET's own transcripts
  (a closed grammar of the sentences that are said: the kind of list a command application sends);
- ``phrases: digits`` and ``phrases: letters+digits``: one phrase holding the digit words (and the
  spelled letters), as Vosk's ``test_words.py`` sends, scored on the utterances whose reference
  uses only those words.

The phrase search's ``lm_weight`` / ``word_score`` are chosen on dev (the dev set's own sentences)
from the grid given, then applied to test. Uses the test transcripts as the list by design: a
measure of the restriction, never a headline WER.

    python tools/bench/phrase_list_an4.py --model exp/model.pt --dev data/manifests/an4_cuts_dev.jsonl.gz \\
        --test data/manifests/an4_cuts_test.jsonl.gz [--lm-params exp/lm-params.yaml]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import torch

from asr.config import ServerConfig
from asr.data.cuts import load_cuts
from asr.decoding.phrases import PhraseSearch
from asr.decoding.resolve import read_lm_params
from asr.decoding.search import BeamSearch, GreedySearch
from asr.decoding.tune import cut_emissions
from asr.model.checkpoint import load_model
from asr.scoring.score import score

DIGITS = "ZERO OH ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE"
LETTERS = " ".join("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def emissions(model, cuts_path: Path) -> tuple[dict[str, str], list[tuple[str, torch.Tensor]]]:
    ids, refs, log_probs = cut_emissions(model, load_cuts(cuts_path))
    return refs, [(cut_id, torch.from_numpy(lp)[None]) for cut_id, lp in zip(ids, log_probs)]


def decode(search, utts) -> dict[str, str]:
    return {cut_id: search(lp, torch.tensor([lp.size(1)]))[0].text for cut_id, lp in utts}


def wer(refs: dict[str, str], hyps: dict[str, str], only: set[str] | None = None) -> tuple[float, int]:
    """%WER over the utterances whose reference uses only the words ``only`` (all if None), and their count."""
    keep = [c for c, r in refs.items() if only is None or set(r.split()) <= only]
    return score({c: refs[c] for c in keep}, {c: hyps[c] for c in keep}, "word").err_rate, len(keep)


def main() -> None:
    cfg = ServerConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--dev", type=Path, required=True, help="AN4 dev cut manifest (chooses the weights)")
    parser.add_argument("--test", type=Path, required=True, help="AN4 test cut manifest")
    parser.add_argument("--lm-params", type=Path, help="lm-params.yaml from 'asr tune': the beam-lm line")
    parser.add_argument("--lm-weights", type=float, nargs="+", default=[1.0, 2.0, 5.0, 10.0])
    parser.add_argument("--word-scores", type=float, nargs="+", default=[0.0, 2.0, 5.0, 10.0])
    parser.add_argument("--order", type=int, default=cfg.phrase_lm_order)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer = load_model(args.model)
    (dev_refs, dev), (test_refs, test) = emissions(model, args.dev), emissions(model, args.test)

    def phrases(sentences, lm_weight, word_score):
        search = PhraseSearch(sentences, tokenizer, lm_weight, word_score, args.order)
        search.close()
        return search.search

    grid = {(w, s): wer(dev_refs, decode(phrases(list(dev_refs.values()), w, s), dev))[0]
            for w, s in itertools.product(args.lm_weights, args.word_scores)}
    weight, word_score = min(grid, key=lambda k: (grid[k], -k[0]))
    print(f"dev grid (%WER, lm_weight x word_score): "
          + ", ".join(f"{w:g}/{s:g}: {e:.2f}" for (w, s), e in grid.items()))
    print(f"chosen on dev: lm_weight {weight:g}, word_score {word_score:g}; order {args.order}\n")
    systems = {"greedy": decode(GreedySearch(tokenizer), test)}
    if args.lm_params is not None:
        tuned = read_lm_params(args.lm_params)
        systems["beam-lm (training-text 3-gram, tuned)"] = decode(BeamSearch(
            tokenizer, tuned.beam_size, tuned.beam_threshold, lexicon=tuned.lexicon, lm=tuned.lm,
            lm_weight=tuned.lm_weight, word_score=tuned.word_score), test)
    systems["phrases: test sentences"] = decode(phrases(list(test_refs.values()), weight, word_score), test)
    systems["phrases: digits"] = decode(phrases([DIGITS], weight, word_score), test)
    systems["phrases: letters+digits"] = decode(phrases([f"{LETTERS} {DIGITS}"], weight, word_score), test)
    digits, spelled = set(DIGITS.split()), set(DIGITS.split()) | set(LETTERS.split())
    print("| system | %WER test (130) | %WER digit-only utts | %WER letter/digit-only utts |")
    print("|---|---|---|---|")
    for name, hyps in systems.items():
        (all_wer, _), (d_wer, d_n), (s_wer, s_n) = wer(test_refs, hyps), wer(test_refs, hyps, digits), \
            wer(test_refs, hyps, spelled)
        print(f"| {name} | {all_wer:.2f} | {d_wer:.2f} ({d_n}) | {s_wer:.2f} ({s_n}) |")


if __name__ == "__main__":
    main()
