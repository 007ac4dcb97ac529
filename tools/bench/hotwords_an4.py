"""Hotwords on AN4: are NOVEMBER and THIRTEEN (in test, never in the training text) recognised, at what cost?

The model runs once over the test cuts; then, on the same log-probs, in one process:

- ``plain``: lexicon + word n-gram beam search (flashlight's KenLM called from C++);
- ``callback``: the same search through ``BoostedLM`` with one hotword of boost 0 (a Python call
  per LM query, no change in scores: must give the same hypotheses; isolates the callback's cost);
- ``hot B``: the hotwords (default NOVEMBER THIRTEEN) with boost B, added to the lexicon since the
  LM-text lexicon lacks them.

For each: occurrences of each hotword in the references that sclite's alignment marks correct,
false alarms (hotwords in a hypothesis not aligned to the same reference word), %WER on the
utterances without any hotword in their reference and on all, and search seconds (median of
``--repeats`` interleaved rounds). Uses knowledge of the test set by design: never a headline WER.

    python tools/bench/hotwords_an4.py --model recipes/an4/exp/model.pt --cuts data/an4_cuts_test.jsonl.gz \
        --lm data/lm/lm.arpa --lexicon data/lm/lexicon.txt [--lm-params recipes/an4/exp/lm-params.yaml]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from asr.data.cuts import load_cuts
from asr.decoding.search import BeamSearch
from asr.decoding.resolve import read_lm_params
from asr.decoding.tune import cut_emissions
from asr.model.checkpoint import load_model
from asr.scoring.align import align_pair
from asr.scoring.score import score


def emissions(model, cuts) -> list[tuple[str, str, torch.Tensor]]:
    """(cut id, reference, (1, T, V) float32 log-probs) per cut, as ``asr tune`` computes them."""
    ids, refs, log_probs = cut_emissions(model, cuts)
    return [(cut_id, refs[cut_id], torch.from_numpy(lp)[None]) for cut_id, lp in zip(ids, log_probs)]


def run(search: BeamSearch, utts) -> tuple[dict[str, str], float]:
    begin = time.perf_counter()
    hyps = {cut_id: search(lp, torch.tensor([lp.size(1)]))[0].text for cut_id, _, lp in utts}
    return hyps, time.perf_counter() - begin


def hotword_counts(refs: dict[str, str], hyps: dict[str, str], words: list[str]) -> dict[str, tuple[int, int, int]]:
    """word -> (reference occurrences, recognised, false alarms)."""
    counts = {w: [0, 0, 0] for w in words}
    for cut_id, ref in refs.items():
        r, h = ref.split(), hyps[cut_id].split()
        i = j = 0
        for op in align_pair(r, h):
            if op in "CSD" and r[i] in counts:
                counts[r[i]][0] += 1
                counts[r[i]][1] += op == "C"
            if op in "SI" and h[j] in counts:
                counts[h[j]][2] += 1
            i += op in "CSD"
            j += op in "CSI"
    return {w: tuple(c) for w, c in counts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--cuts", type=Path, required=True, help="AN4 test cut manifest")
    parser.add_argument("--lm", type=Path, required=True, help="word n-gram of the training text (ARPA)")
    parser.add_argument("--lexicon", type=Path, required=True, help="its lexicon ('asr lm lexicon')")
    parser.add_argument("--lm-params", type=Path, help="lm-params.yaml from 'asr tune' (weights and beam)")
    parser.add_argument("--lm-weight", type=float, default=1.5)
    parser.add_argument("--word-score", type=float, default=3.0)
    parser.add_argument("--beam-size", type=int, default=50)
    parser.add_argument("--hotwords", nargs="+", default=["NOVEMBER", "THIRTEEN"])
    parser.add_argument("--boosts", type=float, nargs="+", default=[2.0, 5.0, 8.0, 12.0])
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds of plain vs callback")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    weights = dict(lm_weight=args.lm_weight, word_score=args.word_score, beam_size=args.beam_size)
    if args.lm_params is not None:
        params = read_lm_params(args.lm_params)
        weights = dict(lm_weight=params.lm_weight, word_score=params.word_score, beam_size=params.beam_size)
    model, tokenizer = load_model(args.model)
    utts = emissions(model, load_cuts(args.cuts))
    refs = {cut_id: ref for cut_id, ref, _ in utts}
    plain_ids = [c for c, r in refs.items() if not set(r.split()) & set(args.hotwords)]
    common = dict(lexicon=args.lexicon, lm=args.lm, **weights)
    plain = BeamSearch(tokenizer, **common)
    known = args.lexicon.read_text().split(None, 1)[0]  # a lexicon word: nothing is added to the lexicon
    callback = BeamSearch(tokenizer, hotwords={known: 0.0}, **common)
    times: dict[str, list[float]] = {"plain": [], "callback": []}
    for _ in range(args.repeats):  # interleaved: plain, callback, plain, callback, ...
        plain_hyps, seconds = run(plain, utts)
        times["plain"].append(seconds)
        callback_hyps, seconds = run(callback, utts)
        times["callback"].append(seconds)
    systems = {"plain": (plain_hyps, statistics.median(times["plain"])),
               "callback (boost 0)": (callback_hyps, statistics.median(times["callback"]))}
    for boost in args.boosts:
        search = BeamSearch(tokenizer, hotwords={w: boost for w in args.hotwords}, **common)
        systems[f"hotwords, boost {boost:g}"] = run(search, utts)
    audio = sum(lp.size(1) for _, _, lp in utts) * model.cfg.features.hop_ms / 1000 * model.cfg.subsampling.factor
    print(f"{len(utts)} utterances ({audio:.0f} s), {len(plain_ids)} without {'/'.join(args.hotwords)}; "
          f"lm_weight {weights['lm_weight']}, word_score {weights['word_score']}, beam {weights['beam_size']}; "
          f"{args.threads} thread(s)\n")
    print("| system | " + " | ".join(f"{w} found / in ref (false alarms)" for w in args.hotwords)
          + " | %WER other utts | %WER all | search s | x plain |")
    print("|---|" + "---|" * (len(args.hotwords) + 4))
    base = systems["plain"][1]
    for name, (hyps, seconds) in systems.items():
        counts = hotword_counts(refs, hyps, args.hotwords)
        other = score({c: refs[c] for c in plain_ids}, {c: hyps[c] for c in plain_ids}, "word").err_rate
        wer = score(refs, hyps, "word").err_rate
        cells = " | ".join(f"{found} / {n} ({false})" for n, found, false in counts.values())
        print(f"| {name} | {cells} | {other:.2f} | {wer:.2f} | {seconds:.2f} | {seconds / base:.2f} |")
    same = callback_hyps == plain_hyps
    print(f"\ncallback with boost 0 gives the same hypotheses as plain KenLM: {same}")


if __name__ == "__main__":
    main()
