"""CTC decoding: greedy and beam search (torchaudio ``ctc_decoder``, flashlight-text).

The beam search is lexicon-free by default; with a lexicon (``asr.decoding.lexicon``) and a word
n-gram (ARPA or KenLM binary, e.g. from ``asr.decoding.lm``) it searches words, weighting the LM by
``lm_weight`` and adding ``word_score`` per word. Both searches are objects called on a batch of
log-probs; given a frame shift, their hypotheses carry words with times and confidences
(``asr.decoding.words``). ``asr.decoding.resolve`` builds the right one from a method and options.
``decode_cuts`` runs a model over a cut manifest and can spread the beam search over worker
processes while the main process runs the model.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import json
import logging
import multiprocessing
import multiprocessing.pool
import os
import sys
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torchaudio.functional as AF
from lhotse import CutSet
from torch import Tensor
from tqdm import tqdm

from ..config import DecodeConfig, SearchConfig
from ..data.cuts import FeatureBatcher, eval_batches
from ..model.files import model_device
from .words import Word, WordBoundaries, group_words, labels_from_path

__all__ = ["Hypothesis", "greedy_search", "GreedySearch", "BeamSearch", "frame_shift", "process_pool",
           "inheritable", "quiet_native_output", "decode_cuts", "word_row", "write_hypotheses", "hypothesis_lines",
           "write_hypothesis_lines"]

log = logging.getLogger(__name__)


class Hypothesis(NamedTuple):
    tokens: list[int]  # unit ids, blanks removed, repeats collapsed
    text: str  # detokenised words
    score: float  # log-probability of the best path (greedy) or decoder score (beam)
    words: tuple[Word, ...] = ()  # words with times and confidences; empty when the frame shift is not given
    nbest: tuple[Hypothesis, ...] = ()  # the n best, this one first, when more than one was asked for


def frame_shift(model) -> float:
    """Seconds between the model's output frames (feature hop times subsampling factor)."""
    return model.cfg.features.hop_ms / 1000.0 * model.cfg.subsampling.factor


def greedy_search(log_probs: Tensor, lens: Tensor, tokenizer, frame_shift: float | None = None) -> list[Hypothesis]:
    """Best path per utterance: argmax, collapse repeats, drop blanks.

    Args:
        log_probs (Tensor): (B, T, V) float.
        lens (Tensor): (B,) int64 valid frames.
        tokenizer: the model's tokenizer.
        frame_shift: seconds per frame; when given, hypotheses carry words (times and confidences
            from the best path).
    """
    best, best_ids = log_probs.max(dim=-1)  # (B, T)
    best, best_ids, lens = best.cpu(), best_ids.cpu(), lens.cpu()  # one copy per batch, not a sync per utterance
    if frame_shift is not None:
        log_probs = log_probs.detach().cpu()
        boundaries = WordBoundaries(tokenizer)
    hyps = []
    for b in range(log_probs.size(0)):
        n = int(lens[b])
        ids = best_ids[b, :n]
        keep = torch.ones_like(ids, dtype=torch.bool)
        keep[1:] = ids[1:] != ids[:-1]
        keep &= ids != tokenizer.blank_id
        tokens = ids[keep].tolist()
        words = ()
        if frame_shift is not None:
            words = tuple(group_words(tokenizer, ids, log_probs[b, :n], frame_shift, boundaries=boundaries))
        hyps.append(Hypothesis(tokens, tokenizer.decode(tokens), float(best[b, :n].sum()), words))
    return hyps


class GreedySearch:
    """``greedy_search`` as a search object: build once, call per batch like ``BeamSearch``.

    Args:
        tokenizer: the model's tokenizer.
        frame_shift: seconds per frame; when given, hypotheses carry words.
    """

    def __init__(self, tokenizer, frame_shift: float | None = None):
        self.tokenizer = tokenizer
        self.frame_shift = frame_shift

    def __call__(self, log_probs: Tensor, lens: Tensor) -> list[Hypothesis]:
        """log_probs (B, T, V), lens (B,) -> best path per utterance."""
        return greedy_search(log_probs, lens, self.tokenizer, self.frame_shift)


@contextlib.contextmanager
def quiet_native_output() -> Iterator[None]:
    """Send whatever native code writes to stdout/stderr (file descriptors 1 and 2) to /dev/null.

    For libraries that print progress straight from C++ (KenLM's "Loading the LM will be faster
    if you build a binary file." and its asterisk bar). The descriptors are process-wide, so
    output of other threads in the meantime is dropped too; keep the block short.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        with contextlib.suppress(Exception):
            ctypes.CDLL(None).fflush(None)  # C stdio buffers still hold native output: flush it to /dev/null
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def _load_kenlm(path: Path, word_dict):
    """flashlight's KenLM wrapper, read quietly; a file KenLM rejects is checked as ARPA to name the bad line."""
    try:
        from flashlight.lib.text.decoder.kenlm import KenLM
    except ImportError:
        from flashlight.lib.text.decoder import KenLM
    from .lm import read_arpa

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such language model file")
    try:
        with quiet_native_output():  # KenLM prints a binary-file hint and a progress bar from C++
            lm = KenLM(str(path), word_dict)
    except (RuntimeError, OSError) as err:
        read_arpa(path)  # raises ValueError("FILE:LINE: ...") for a malformed ARPA file
        reason = str(err).strip().splitlines()[0][-200:] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: KenLM cannot load this language model ({reason})") from None
    log.info("loaded the language model %s", path)
    return lm


class BeamSearch:
    """Beam search through torchaudio's flashlight-text ``ctc_decoder``; build once, call per batch.

    Without ``lexicon`` the search is lexicon-free: over units, with ``lm`` (if any) a model whose
    words are the tokenizer's units (``asr lm build --units-of MODEL``). With ``lexicon`` it emits
    only lexicon words and ``lm`` is a word n-gram (ARPA or KenLM binary), read once.

    Word times and confidences come from the best CTC path of the hypothesis's own units (a
    forced alignment, so a beam hypothesis with the greedy units gets the greedy words).

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
        frame_shift: seconds per frame; when given, hypotheses carry words.
        hotwords: lexicon search only: a ``WORD [BOOST]`` file or ``{word: boost}``; the words are
            added to the lexicon and boosted through the LM (``asr.decoding.hotwords``).
    """

    _DECODER_OPTIONS = ("beam_size", "beam_threshold", "lm_weight", "word_score", "sil_score", "nbest")

    def __init__(self, tokenizer, beam_size: int = SearchConfig.beam_size,
                 beam_threshold: float = SearchConfig.beam_threshold, *, lexicon: str | Path | None = None,
                 lm: str | Path | None = None, lm_weight: float = SearchConfig.lm_weight,
                 word_score: float = SearchConfig.word_score, sil_score: float = SearchConfig.sil_score,
                 nbest: int = SearchConfig.nbest, frame_shift: float | None = None, hotwords=None):
        from flashlight.lib.text.dictionary import Dictionary, create_word_dict, load_words

        from .lexicon import read_lexicon

        self.tokenizer = tokenizer
        self._sil_id = tokenizer.units.index(tokenizer.sil_token)
        self._boundaries = WordBoundaries(tokenizer)
        self.options = dict(beam_size=beam_size, beam_threshold=beam_threshold, lexicon=lexicon, lm=lm,
                            lm_weight=lm_weight, word_score=word_score, sil_score=sil_score, nbest=nbest,
                            frame_shift=frame_shift, hotwords=hotwords)
        self._check()
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

    @classmethod
    def from_config(cls, tokenizer, cfg: SearchConfig, frame_shift: float | None = None) -> BeamSearch:
        """The beam search a resolved ``SearchConfig`` describes (``asr.decoding.resolve``)."""
        return cls(tokenizer, cfg.beam_size, cfg.beam_threshold, lexicon=cfg.lexicon, lm=cfg.lm,
                   lm_weight=cfg.lm_weight, word_score=cfg.word_score, sil_score=cfg.sil_score, nbest=cfg.nbest,
                   frame_shift=frame_shift, hotwords=cfg.hotwords)

    def _check(self) -> None:
        o = self.options
        if o["nbest"] < 1 or o["beam_size"] < 1:
            raise ValueError(f"nbest and beam_size: expected >= 1, got {o['nbest']} and {o['beam_size']}")

    def _build(self):
        from torchaudio.models.decoder import ctc_decoder

        o = self.options
        lm = self._kenlm
        if self._hotwords is not None:
            from flashlight.lib.text.decoder import ZeroLM

            from .hotwords import BoostedLM

            self._boosted = lm = BoostedLM(lm if lm is not None else ZeroLM(), self._word_dict, self._hotwords,
                                           o["lm_weight"])
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

    def replace(self, **changes) -> BeamSearch:
        """The same search with other decoder options (beam_size, beam_threshold, lm_weight, word_score,
        sil_score, nbest, frame_shift), sharing the loaded LM and lexicon."""
        unknown = sorted(set(changes) - set(self._DECODER_OPTIONS) - {"frame_shift"})
        if unknown:
            raise ValueError(f"{', '.join(unknown)}: cannot be changed on a built search (build another)")
        other = copy.copy(self)
        other.options = {**self.options, **changes}
        other._check()
        other.decoder = other._build()
        return other

    def reweighted(self, lm_weight: float, word_score: float) -> BeamSearch:
        """The same search with other LM weight and word score, sharing the loaded LM."""
        return self.replace(lm_weight=lm_weight, word_score=word_score)

    def _labels(self, tokens: list[int], frames: list[int], emissions: Tensor) -> Tensor:
        """(T,) frame labels: the best CTC path of ``tokens`` (the search's own path if none is found).

        Separators before the first and after the last word are left out: the lexicon search puts
        one there whatever the audio says, and forcing it in would take a frame from a word.
        """
        targets = [t for t in tokens if t != self.tokenizer.blank_id]
        while targets and targets[0] == self._sil_id:
            targets.pop(0)
        while targets and targets[-1] == self._sil_id:
            targets.pop()
        if not targets:
            return torch.zeros(emissions.size(0), dtype=torch.int64)
        try:
            labels, _ = AF.forced_align(emissions[None], torch.tensor([targets], dtype=torch.int32),
                                        blank=self.tokenizer.blank_id)  # (1, T, V) -> (1, T)
            return labels[0].long()
        except RuntimeError:  # cannot happen for a path the search found; kept as a guard
            return labels_from_path(tokens, frames, emissions.size(0))

    def _hypothesis(self, result, emissions: Tensor | None) -> Hypothesis:
        """One decoder result; ``emissions`` (T, V) of its utterance when words are wanted."""
        tokens = result.tokens.tolist()
        text = " ".join(result.words) if self.options["lexicon"] is not None else self.tokenizer.decode(tokens)
        words = ()
        if emissions is not None:
            frames = [max(t - 1, 0) for t in result.timesteps.tolist()]  # flashlight prepends one start frame
            labels = self._labels(tokens, frames, emissions)
            words = tuple(group_words(self.tokenizer, labels, emissions, self.options["frame_shift"],
                                      boundaries=self._boundaries))
        tokens = [t for t in tokens if t != self._sil_id]  # ctc_decoder already drops blanks
        return Hypothesis(tokens, text, float(result.score), words)

    def _best(self, results, emissions: Tensor | None) -> Hypothesis:
        """The best of an utterance's decoder results, the n-best inside when more than one was asked
        for (words for the best only: the others are texts)."""
        best = self._hypothesis(results[0], emissions)
        if self.options["nbest"] > 1:
            best = best._replace(nbest=(best, *(self._hypothesis(r, None) for r in results[1:])))
        return best

    # -- incremental decoding, for a live stream (asr.inference.stream) -------------------------------
    def fork(self) -> BeamSearch:
        """The same search with a decoder of its own (its own incremental state), sharing the loaded LM."""
        return self.replace()

    def begin(self) -> None:
        """Start an utterance (or segment) fed frame block by frame block through ``step``."""
        self.decoder.decode_begin()

    def step(self, log_probs: Tensor) -> None:
        """log_probs (N, V): the next N frames of the open utterance."""
        self.decoder.decode_step(log_probs.detach().to("cpu", torch.float32).contiguous())

    def partial(self) -> str:
        """Text of the best hypothesis so far (the open word not closed, as a live display wants)."""
        best = self.decoder.decoder.get_all_final_hypothesis()
        return self._hypothesis(self.decoder._to_hypo(best[:1])[0], None).text if best else ""

    def final(self, emissions: Tensor | None = None) -> Hypothesis:
        """End the open utterance; its best hypothesis (n-best inside when asked), with words when
        ``emissions`` (T, V) (every frame ``step`` was given) and the frame shift are given, as
        ``__call__`` would return."""
        with_words = emissions is not None and self.options["frame_shift"] is not None
        if with_words:
            emissions = emissions.detach().to("cpu", torch.float32)
        if self._close_last_word:  # as ``__call__``: one frame where the word separator is certain
            closing = torch.full((1, len(self.tokenizer.units)), -1e4)
            closing[0, self._sil_id] = 0.0
            self.decoder.decode_step(closing)
            if with_words:
                emissions = torch.cat([emissions, closing])  # (T + 1, V), as ``__call__`` aligns it
        self.decoder.decode_end()
        results = self.decoder.get_final_hypothesis()
        if not results:
            return Hypothesis([], "", float("-inf"))
        return self._best(results, emissions if with_words else None)

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
        with_words = self.options["frame_shift"] is not None
        hyps = []
        for b, results in enumerate(self.decoder(emissions, lens)):
            if not results:
                hyps.append(Hypothesis([], "", float("-inf")))
                continue
            hyps.append(self._best(results, emissions[b, : int(lens[b])] if with_words else None))
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
def decode_cuts(model, cuts: CutSet, search: GreedySearch | BeamSearch,
                max_duration: float = DecodeConfig.max_duration, num_workers: int = DecodeConfig.num_workers,
                shard: tuple[int, int] = (0, 1)) -> Iterator[tuple[str, str, Hypothesis]]:
    """Yield (cut id, reference text, hypothesis) for every cut, in batches of ``max_duration`` s.

    Args:
        model: a ``CTCModel``; it runs on the device its weights are on.
        cuts: the cuts to decode, read with ``asr.data.cuts.load_cuts``.
        search: a ``GreedySearch`` or ``BeamSearch`` (``asr.decoding.resolve.make_search``).
        max_duration: seconds of audio per forward pass.
        num_workers: beam search in this many worker processes (0: in this process; greedy: always
            here); the model runs here, overlapping with the search of the previous batches.
        shard: (I, N): only the cuts of batches I, I + N, ... (``asr.data.cuts.eval_batches``).
    """
    if not isinstance(search, (GreedySearch, BeamSearch)):
        raise TypeError(f"search: expected a GreedySearch or BeamSearch, got {type(search).__name__}")
    beam = isinstance(search, BeamSearch)
    num_workers = num_workers if beam else 0
    model.eval()
    device = model_device(model)
    batcher = FeatureBatcher(model.cfg.features)
    batches = eval_batches(cuts, max_duration, shard)
    total = len(cuts) if shard[1] == 1 else None
    with tqdm(total=total, desc=f"decode ({'beam' if beam else 'greedy'})", unit="utt", disable=None) as bar:
        if num_workers > 0:
            options = {**search.options, "tokenizer": search.tokenizer.to_dict()}
            with process_pool(num_workers, _init_worker, (inheritable(search), options)) as pool:
                yield from _decode_in_pool(model, device, batcher, batches, pool, num_workers, bar)
            return
        for batch_cuts in batches:
            batch = batcher(batch_cuts)
            log_probs, lens = model(batch.feats.to(device), batch.feat_lens.to(device))
            for cut_id, ref, hyp in zip(batch.ids, batch.texts, search(log_probs, lens)):
                yield cut_id, ref, hyp
            bar.update(len(batch.ids))


def _decode_in_pool(model, device, batcher, batches, pool, num_workers, bar):
    """Run the model batch by batch and hand each batch's search to the pool, at most a few batches ahead."""
    pending: deque = deque()
    for batch_cuts in batches:
        batch = batcher(batch_cuts)
        log_probs, lens = model(batch.feats.to(device), batch.feat_lens.to(device))
        emissions = log_probs.to("cpu", torch.float32).numpy()  # (B, T, V), sorted by decreasing length
        lens = lens.cpu().numpy()
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


def word_row(word: Word) -> dict:
    """A word as JSON: ``word``, ``start``, ``end`` (seconds) and ``conf`` (3 decimals)."""
    return {"word": word.word, "start": round(word.start, 3), "end": round(word.end, 3), "conf": round(word.conf, 3)}


def _json_row(cut_id: str, hyp: Hypothesis) -> dict:
    row = {"id": cut_id, "text": hyp.text, "score": hyp.score}
    if hyp.words:
        row["words"] = [word_row(w) for w in hyp.words]
    if hyp.nbest:
        row["nbest"] = [{"text": h.text, "score": h.score} for h in hyp.nbest]
    return row


def write_hypotheses(results: list[tuple[str, str, Hypothesis]], out_dir: str | Path, name: str) -> Path:
    """Write ``hyp-<name>.txt`` (Kaldi text) and ``hyp-<name>.jsonl``; returns the text file.

    A JSON line holds ``id``, ``text`` and ``score``, plus ``words`` (``word``, ``start``, ``end`` in
    seconds, ``conf`` from 0 to 1) when the hypothesis has words and ``nbest`` (``text``, ``score``,
    best first) when it has an n-best list.
    """
    return write_hypothesis_lines(hypothesis_lines(results), out_dir, name)


def hypothesis_lines(results: list[tuple[str, str, Hypothesis]]) -> list[tuple[str, str, str]]:
    """(cut id, its line of ``hyp-<name>.txt``, its line of ``hyp-<name>.jsonl``) per result."""
    return [(cut_id, f"{cut_id} {hyp.text}\n".replace(" \n", "\n"), json.dumps(_json_row(cut_id, hyp)) + "\n")
            for cut_id, _, hyp in results]


def write_hypothesis_lines(lines: list[tuple[str, str, str]], out_dir: str | Path, name: str) -> Path:
    """``write_hypotheses`` from ``hypothesis_lines`` (those of several shards, say): sorted by cut id."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = sorted(lines, key=lambda line: line[0])
    text_path = out_dir / f"hyp-{name}.txt"
    for path, column in ((text_path, 1), (out_dir / f"hyp-{name}.jsonl", 2)):
        partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # shards of a job array may merge at once
        with open(partial, "w") as f:
            f.writelines(line[column] for line in lines)
        os.replace(partial, path)
    return text_path
