"""CTC decoding: greedy and beam search (torchaudio ``ctc_decoder``, flashlight-text)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import torch
from lhotse import CutSet
from torch import Tensor
from tqdm import tqdm

from .data import FeatureBatcher, eval_batches

__all__ = ["Hypothesis", "greedy_search", "BeamSearch", "decode_cuts", "write_hypotheses"]

log = logging.getLogger(__name__)


class Hypothesis(NamedTuple):
    tokens: list[int]  # unit ids, blanks removed, repeats collapsed
    text: str  # detokenised words
    score: float  # log-probability of the best path (greedy) or decoder score (beam)


def greedy_search(log_probs: Tensor, lens: Tensor, tokenizer) -> list[Hypothesis]:
    """Best path per utterance: argmax, collapse repeats, drop blanks.

    Args:
        log_probs (Tensor): (B, T, V) float.
        lens (Tensor): (B,) int64 valid frames.
    """
    best, best_ids = log_probs.max(dim=-1)  # (B, T)
    hyps = []
    for b in range(log_probs.size(0)):
        ids = best_ids[b, : lens[b]]
        keep = torch.ones_like(ids, dtype=torch.bool)
        keep[1:] = ids[1:] != ids[:-1]
        tokens = [i for i in ids[keep].tolist() if i != tokenizer.blank_id]
        hyps.append(Hypothesis(tokens, tokenizer.decode(tokens), float(best[b, : lens[b]].sum())))
    return hyps


class BeamSearch:
    """Lexicon-free beam search through torchaudio's flashlight-text decoder (no LM yet)."""

    def __init__(self, tokenizer, beam_size: int = 16, beam_threshold: float = 25.0):
        from torchaudio.models.decoder import ctc_decoder

        self.tokenizer = tokenizer
        self.decoder = ctc_decoder(
            lexicon=None,
            tokens=tokenizer.units,
            lm=None,
            nbest=1,
            beam_size=beam_size,
            beam_threshold=beam_threshold,
            blank_token=tokenizer.units[tokenizer.blank_id],
            sil_token=tokenizer.sil_token,
        )

    def __call__(self, log_probs: Tensor, lens: Tensor) -> list[Hypothesis]:
        """log_probs (B, T, V), lens (B,) -> best hypothesis per utterance."""
        emissions = log_probs.detach().to("cpu", torch.float32).contiguous()  # decoder needs this
        results = self.decoder(emissions, lens.to("cpu", torch.int32))
        hyps = []
        for nbest in results:
            best = nbest[0]
            tokens = [t for t in best.tokens.tolist() if t != self.tokenizer.blank_id]
            text = self.tokenizer.decode(tokens)
            tokens = [t for t in tokens if self.tokenizer.units[t] != self.tokenizer.sil_token]
            hyps.append(Hypothesis(tokens, text, float(best.score)))
        return hyps


@torch.no_grad()
def decode_cuts(
    model, tokenizer, cuts: CutSet, method: str = "greedy", beam_size: int = 16, max_duration: float = 200.0
) -> Iterator[tuple[str, str, Hypothesis]]:
    """Yield (cut id, reference text, hypothesis) for every cut, in batches of ``max_duration`` s."""
    if method == "greedy":
        search = lambda lp, lens: greedy_search(lp, lens, tokenizer)  # noqa: E731
    elif method == "beam":
        search = BeamSearch(tokenizer, beam_size)
    else:
        raise ValueError(f"method: expected 'greedy' or 'beam', got {method!r}")
    model.eval()
    batcher = FeatureBatcher(model.cfg.features)
    total = len(cuts)
    with tqdm(total=total, desc=f"decode ({method})", unit="utt", disable=None) as bar:
        for batch_cuts in eval_batches(cuts, max_duration):
            batch = batcher(batch_cuts)
            log_probs, lens = model(batch.feats, batch.feat_lens)
            for cut_id, ref, hyp in zip(batch.ids, batch.texts, search(log_probs, lens)):
                yield cut_id, ref, hyp
            bar.update(len(batch.ids))


def write_hypotheses(results: list[tuple[str, str, Hypothesis]], out_dir: str | Path, name: str) -> Path:
    """Write ``hyp-<name>.txt`` (Kaldi text) and ``hyp-<name>.jsonl``; returns the text file."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = sorted(results)
    text_path = out_dir / f"hyp-{name}.txt"
    with open(text_path, "w") as f:
        for cut_id, _, hyp in results:
            f.write(f"{cut_id} {hyp.text}\n".replace(" \n", "\n"))
    with open(out_dir / f"hyp-{name}.jsonl", "w") as f:
        for cut_id, _, hyp in results:
            f.write(json.dumps({"id": cut_id, "text": hyp.text, "score": hyp.score}) + "\n")
    return text_path
