"""CTC decoding: greedy and beam search (torchaudio ``ctc_decoder``, flashlight-text).

The beam search is lexicon-free by default; with a lexicon (``asr.lexicon``) and a word n-gram
(ARPA or KenLM binary, e.g. from ``asr.lm``) it searches words, weighting the LM by ``lm_weight``
and adding ``word_score`` per word. Hypotheses carry n-best lists and word start/end times (from
the frames at which the search emitted each unit). ``decode_cuts`` can spread the beam search
over worker processes while the main process runs the model.
"""

from __future__ import annotations

import copy
import json
import logging
import multiprocessing
import multiprocessing.pool
from collections import deque
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from lhotse import CutSet
from torch import Tensor
from tqdm import tqdm

from ..data.cuts import FeatureBatcher, eval_batches

__all__ = ["WordSpan", "Hypothesis", "greedy_search", "BeamSearch", "frame_shift", "process_pool", "inheritable",
           "decode_cuts", "write_hypotheses"]

log = logging.getLogger(__name__)


class WordSpan(NamedTuple):
    word: str
    start: float  # seconds from the start of the utterance: first frame of the word's first unit
    end: float  # seconds: end of the frame of the word's last unit


class Hypothesis(NamedTuple):
    tokens: list[int]  # unit ids, blanks removed, repeats collapsed
    text: str  # detokenised words
    score: float  # log-probability of the best path (greedy) or decoder score (beam)
    words: tuple[WordSpan, ...] = ()  # word times; empty when the frame shift is not given
    nbest: tuple[Hypothesis, ...] = ()  # the n best, this one first, when more than one was asked for


def frame_shift(model) -> float:
    """Seconds between the model's output frames (feature hop times subsampling factor)."""
    return model.cfg.features.hop_ms / 1000.0 * model.cfg.subsampling.factor


def _word_spans(tokenizer, tokens: list[int], frames: list[int], shift: float) -> tuple[WordSpan, ...]:
    """Group units into words (split at the word separator, before a ``▁`` piece, or at every phone) with times."""
    sil = tokenizer.sil_token
    if tokenizer.unit_words:  # phones: every unit is a word
        return tuple(WordSpan(tokenizer.units[t], round(f * shift, 3), round((f + 1) * shift, 3))
                     for t, f in zip(tokens, frames) if t != tokenizer.blank_id)
    pieces = sil == tokenizer.units[tokenizer.blank_id]  # sentencepiece units mark word starts with "▁"
    spans: list[WordSpan] = []
    word: list[tuple[int, int]] = []

    def close() -> None:
        text = tokenizer.decode([t for t, _ in word]) if word else ""
        if text:
            spans.append(WordSpan(text, round(word[0][1] * shift, 3), round((word[-1][1] + 1) * shift, 3)))
        word.clear()

    for token, frame in zip(tokens, frames):
        unit = tokenizer.units[token]
        if unit == sil or (pieces and unit.startswith("▁")):
            close()
        if unit != sil:
            word.append((token, frame))
    close()
    return tuple(spans)


def greedy_search(log_probs: Tensor, lens: Tensor, tokenizer, frame_shift: float | None = None) -> list[Hypothesis]:
    """Best path per utterance: argmax, collapse repeats, drop blanks.

    Args:
        log_probs (Tensor): (B, T, V) float.
        lens (Tensor): (B,) int64 valid frames.
        tokenizer: the model's tokenizer.
        frame_shift: seconds per frame; when given, hypotheses carry word times.
    """
    best, best_ids = log_probs.max(dim=-1)  # (B, T)
    hyps = []
    for b in range(log_probs.size(0)):
        ids = best_ids[b, : lens[b]]
        keep = torch.ones_like(ids, dtype=torch.bool)
        keep[1:] = ids[1:] != ids[:-1]
        keep &= ids != tokenizer.blank_id
        tokens = ids[keep].tolist()
        words = ()
        if frame_shift is not None:
            words = _word_spans(tokenizer, tokens, keep.nonzero().squeeze(1).tolist(), frame_shift)
        hyps.append(Hypothesis(tokens, tokenizer.decode(tokens), float(best[b, : lens[b]].sum()), words))
    return hyps


def _load_kenlm(path: Path, word_dict):
    """flashlight's KenLM wrapper; a file KenLM rejects is checked as ARPA to name the bad line."""
    try:
        from flashlight.lib.text.decoder.kenlm import KenLM
    except ImportError:
        from flashlight.lib.text.decoder import KenLM
    from .lm import read_arpa

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such language model file")
    try:
        return KenLM(str(path), word_dict)
    except (RuntimeError, OSError) as err:
        read_arpa(path)  # raises ValueError("FILE:LINE: ...") for a malformed ARPA file
        reason = str(err).strip().splitlines()[0][-200:] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: KenLM cannot load this language model ({reason})") from None


class BeamSearch:
    """Beam search through torchaudio's flashlight-text ``ctc_decoder``; build once, call per batch.

    Without ``lexicon`` the search is lexicon-free: over units, with ``lm`` (if any) a model whose
    words are the tokenizer's units (``asr lm build --units-of MODEL``). With ``lexicon`` it emits
    only lexicon words and ``lm`` is a word n-gram (ARPA or KenLM binary), read once.

    Args:
        tokenizer: the model's tokenizer.
        beam_size: hypotheses kept after each frame.
        beam_threshold: hypotheses scoring this much below the best are dropped.
        lexicon: ``WORD<TAB>UNITS`` file (``asr lm lexicon``); checked against the tokenizer's units.
        lm: KenLM language model file.
        lm_weight: weight of the LM's natural-log probability.
        word_score: added for every word (lexicon search only).
        sil_score: added for every word separator.
        nbest: hypotheses returned per utterance (in ``Hypothesis.nbest`` when > 1).
        frame_shift: seconds per frame; when given, hypotheses carry word times.
        hotwords: lexicon search only: a ``WORD [BOOST]`` file or ``{word: boost}``; the words are
            added to the lexicon and boosted through the LM (``asr.decoding.hotwords``).
    """

    def __init__(self, tokenizer, beam_size: int = 16, beam_threshold: float = 25.0, *,
                 lexicon: str | Path | None = None, lm: str | Path | None = None, lm_weight: float = 2.0,
                 word_score: float = 0.0, sil_score: float = 0.0, nbest: int = 1,
                 frame_shift: float | None = None, hotwords=None):
        from flashlight.lib.text.dictionary import Dictionary, create_word_dict, load_words

        from .lexicon import read_lexicon

        if nbest < 1 or beam_size < 1:
            raise ValueError(f"nbest and beam_size: expected >= 1, got {nbest} and {beam_size}")
        self.tokenizer = tokenizer
        self._sil_id = tokenizer.units.index(tokenizer.sil_token)
        self.options = dict(beam_size=beam_size, beam_threshold=beam_threshold, lexicon=lexicon, lm=lm,
                            lm_weight=lm_weight, word_score=word_score, sil_score=sil_score, nbest=nbest,
                            frame_shift=frame_shift, hotwords=hotwords)
        self._kenlm = None
        self._hotwords, self._word_dict = None, None
        # A lexicon word ends with the separator, which a model trained without a trailing one never
        # emits after the last word: one appended frame where the separator is certain closes it.
        self._close_last_word = lexicon is not None and tokenizer.sil_token != tokenizer.units[tokenizer.blank_id]
        if lexicon is not None:
            read_lexicon(lexicon, tokenizer)  # one clear error for a unit the model does not have
            if hotwords is not None:
                from .hotwords import lexicon_with_hotwords, spell_hotwords

                self._hotwords = spell_hotwords(hotwords, tokenizer)
                lexicon = lexicon_with_hotwords(lexicon, self._hotwords)
            self._word_dict = create_word_dict(load_words(str(lexicon)))  # the one ctc_decoder builds from it
            if lm is not None:
                self._kenlm = _load_kenlm(Path(lm), self._word_dict)
        elif hotwords is not None:
            raise ValueError("hotwords: need a lexicon (the lexicon-free search has no words to boost)")
        elif lm is not None:
            # The lexicon-free search asks the LM about unit i as word i; ctc_decoder's own word
            # dictionary for a path is in hash order (torchaudio 2.11), so build it in unit order.
            self._kenlm = _load_kenlm(Path(lm), Dictionary(tokenizer.units))
        self._lexicon_file = lexicon  # with the hotwords' spellings, if any
        self.decoder = self._build()

    def _build(self):
        from torchaudio.models.decoder import ctc_decoder

        o = self.options
        lm = self._kenlm
        if self._hotwords is not None:
            from flashlight.lib.text.decoder import ZeroLM

            from .hotwords import BoostedLM

            self._boosted = lm = BoostedLM(lm if lm is not None else ZeroLM(), self._word_dict, self._hotwords, o["lm_weight"])
        return ctc_decoder(
            lexicon=str(self._lexicon_file) if self._lexicon_file is not None else None,
            tokens=self.tokenizer.units,
            lm=lm,
            nbest=o["nbest"],
            beam_size=o["beam_size"],
            beam_threshold=o["beam_threshold"],
            lm_weight=o["lm_weight"],
            word_score=o["word_score"],
            sil_score=o["sil_score"],
            blank_token=self.tokenizer.units[self.tokenizer.blank_id],
            sil_token=self.tokenizer.sil_token,
        )

    def reweighted(self, lm_weight: float, word_score: float) -> BeamSearch:
        """The same search with other LM weight and word score, sharing the loaded LM."""
        other = copy.copy(self)
        other.options = {**self.options, "lm_weight": lm_weight, "word_score": word_score}
        other.decoder = other._build()
        return other

    def _hypothesis(self, result) -> Hypothesis:
        tokens = result.tokens.tolist()
        frames = [t - 1 for t in result.timesteps.tolist()]  # flashlight prepends one start frame
        text = " ".join(result.words) if self.options["lexicon"] is not None else self.tokenizer.decode(tokens)
        words = ()
        if self.options["frame_shift"] is not None:
            words = _word_spans(self.tokenizer, tokens, frames, self.options["frame_shift"])
        tokens = [t for t in tokens if t != self._sil_id]  # ctc_decoder already drops blanks
        return Hypothesis(tokens, text, float(result.score), words)

    def _append_separator(self, emissions: Tensor, lens: Tensor) -> tuple[Tensor, Tensor]:
        """(B, T, V), (B,) -> (B, T + 1, V), lens + 1: frame ``lens[b]`` emits only the separator."""
        batch, frames, vocab = emissions.shape
        padded = emissions.new_empty(batch, frames + 1, vocab)
        padded[:, :frames] = emissions
        separator = torch.full((vocab,), -1e4)  # log-probability of every other unit: never chosen
        separator[self._sil_id] = 0.0
        padded[torch.arange(batch), lens.long()] = separator
        return padded, lens + 1

    def __call__(self, log_probs: Tensor, lens: Tensor) -> list[Hypothesis]:
        """log_probs (B, T, V), lens (B,) -> best hypothesis per utterance (n-best inside when asked)."""
        emissions = log_probs.detach().to("cpu", torch.float32).contiguous()  # decoder needs this
        lens = lens.to("cpu", torch.int32)
        if self._close_last_word:
            emissions, lens = self._append_separator(emissions, lens)
        hyps = []
        for results in self.decoder(emissions, lens):
            nbest = [self._hypothesis(r) for r in results]
            if not nbest:
                nbest = [Hypothesis([], "", float("-inf"))]
            hyps.append(nbest[0]._replace(nbest=tuple(nbest)) if self.options["nbest"] > 1 else nbest[0])
        return hyps


_worker_options: dict | None = None
_worker_search_fn: BeamSearch | None = None
_FORK = "fork" in multiprocessing.get_all_start_methods()


def _init_worker(search: BeamSearch | None, options: dict) -> None:
    global _worker_options, _worker_search_fn
    torch.set_num_threads(1)
    _worker_search_fn, _worker_options = search, options


def _search_in_worker(emissions: np.ndarray, lens: np.ndarray) -> list[Hypothesis]:
    """Worker side: the forked parent's search, or one built on first use (errors travel back)."""
    global _worker_search_fn
    if _worker_search_fn is None:
        from ..data.tokenizer import tokenizer_from_dict

        options = dict(_worker_options)
        tokenizer = tokenizer_from_dict(options.pop("tokenizer"))
        _worker_search_fn = BeamSearch(tokenizer, **options)
    return _worker_search_fn(torch.from_numpy(emissions), torch.from_numpy(lens))


def process_pool(num_workers: int, initializer, initargs: tuple) -> multiprocessing.pool.Pool:
    """A pool of worker processes, forked where the platform allows.

    Forked workers start at once and inherit ``initargs`` (a loaded LM included) without pickling
    or reloading; they run only the flashlight search, never OpenMP code the parent may have started.
    """
    return multiprocessing.get_context("fork" if _FORK else "spawn").Pool(num_workers, initializer, initargs)


def inheritable(obj):
    """``obj`` where forked workers inherit it, else None (spawned workers rebuild it from options)."""
    return obj if _FORK else None


@torch.no_grad()
def decode_cuts(
    model, tokenizer, cuts: CutSet, method: str = "greedy", beam_size: int = 16, max_duration: float = 200.0,
    *, num_workers: int = 0, **beam_options,
) -> Iterator[tuple[str, str, Hypothesis]]:
    """Yield (cut id, reference text, hypothesis) for every cut, in batches of ``max_duration`` s.

    Args:
        method: ``"greedy"`` or ``"beam"``.
        num_workers: beam search in this many worker processes (0: in this process); the model
            runs here, overlapping with the search of the previous batches.
        beam_options: further keyword arguments of ``BeamSearch`` (lexicon, lm, lm_weight, word_score,
            beam_threshold, sil_score, nbest).
    """
    shift = frame_shift(model)
    if method == "greedy":
        search = partial(greedy_search, tokenizer=tokenizer, frame_shift=shift)
        num_workers = 0
    elif method == "beam":
        search = BeamSearch(tokenizer, beam_size, frame_shift=shift, **beam_options)  # checks every option here
    else:
        raise ValueError(f"method: expected 'greedy' or 'beam', got {method!r}")
    model.eval()
    batcher = FeatureBatcher(model.cfg.features)
    with tqdm(total=len(cuts), desc=f"decode ({method})", unit="utt", disable=None) as bar:
        if num_workers > 0:
            options = {**search.options, "tokenizer": tokenizer.to_dict(), "beam_size": beam_size}
            with process_pool(num_workers, _init_worker, (inheritable(search), options)) as pool:
                yield from _decode_in_pool(model, batcher, cuts, max_duration, pool, num_workers, bar)
            return
        for batch_cuts in eval_batches(cuts, max_duration):
            batch = batcher(batch_cuts)
            log_probs, lens = model(batch.feats, batch.feat_lens)
            for cut_id, ref, hyp in zip(batch.ids, batch.texts, search(log_probs, lens)):
                yield cut_id, ref, hyp
            bar.update(len(batch.ids))


def _decode_in_pool(model, batcher, cuts, max_duration, pool, num_workers, bar):
    """Run the model batch by batch and hand each batch's search to the pool, at most a few batches ahead."""
    pending: deque = deque()
    for batch_cuts in eval_batches(cuts, max_duration):
        batch = batcher(batch_cuts)
        log_probs, lens = model(batch.feats, batch.feat_lens)
        emissions = log_probs.to(torch.float32).numpy()  # (B, T, V), sorted by decreasing length
        lens = lens.numpy()
        jobs = []
        for part in np.array_split(np.arange(len(batch.ids)), min(2 * num_workers, len(batch.ids))):
            width = int(lens[part].max())
            jobs.append(pool.apply_async(_search_in_worker, (np.ascontiguousarray(emissions[part, :width]),
                                                             lens[part])))
        pending.append((batch.ids, batch.texts, jobs))
        while len(pending) > num_workers:
            yield from _collect(pending.popleft(), bar)
    while pending:
        yield from _collect(pending.popleft(), bar)


def _collect(entry, bar) -> Iterator[tuple[str, str, Hypothesis]]:
    ids, texts, jobs = entry
    hyps = [h for job in jobs for h in job.get()]
    yield from zip(ids, texts, hyps)
    bar.update(len(ids))


def _json_row(cut_id: str, hyp: Hypothesis) -> dict:
    row = {"id": cut_id, "text": hyp.text, "score": hyp.score}
    if hyp.words:
        row["words"] = [{"word": w.word, "start": w.start, "end": w.end} for w in hyp.words]
    if hyp.nbest:
        row["nbest"] = [{"text": h.text, "score": h.score} for h in hyp.nbest]
    return row


def write_hypotheses(results: list[tuple[str, str, Hypothesis]], out_dir: str | Path, name: str) -> Path:
    """Write ``hyp-<name>.txt`` (Kaldi text) and ``hyp-<name>.jsonl``; returns the text file.

    A JSON line holds ``id``, ``text`` and ``score``, plus ``words`` (``word``, ``start``, ``end`` in
    seconds) when the hypothesis has word times and ``nbest`` (``text``, ``score``, best first) when
    it has an n-best list.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = sorted(results, key=lambda r: r[0])
    text_path = out_dir / f"hyp-{name}.txt"
    with open(text_path, "w") as f:
        for cut_id, _, hyp in results:
            f.write(f"{cut_id} {hyp.text}\n".replace(" \n", "\n"))
    with open(out_dir / f"hyp-{name}.jsonl", "w") as f:
        for cut_id, _, hyp in results:
            f.write(json.dumps(_json_row(cut_id, hyp)) + "\n")
    return text_path
