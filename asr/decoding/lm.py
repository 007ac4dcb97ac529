"""Word n-gram language models: interpolated modified Kneser-Ney estimation and ARPA files.

``build_lm`` streams a text file twice (vocabulary, then n-gram counts) and estimates an
interpolated modified Kneser-Ney model the way KenLM's ``lmplz`` does (Chen & Goodman's three
discounts per order, adjusted counts for lower orders, unigrams interpolated with the uniform
distribution), with no external binary. N-grams are packed into int64 keys, counted per chunk
with numpy and merged, so memory grows with the number of distinct n-grams, not with the text.

Optional pruning drops singletons (count <= 1; adjusted counts for lower orders) of order >= 2,
keeping every n-gram that a kept longer n-gram needs as prefix or suffix, and recomputes the
backoff weights so that every context still sums to one.

``read_arpa`` loads an ARPA file (checked line by line) into an ``ArpaLM`` that scores text with
standard backoff, the reference for KenLM's numbers.
"""

from __future__ import annotations

import gzip
import itertools
import logging
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import LMBuildConfig

__all__ = ["BOS", "EOS", "UNK", "read_sentences", "build_lm", "ArpaLM", "read_arpa", "arpa_words"]

log = logging.getLogger(__name__)

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
_FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # lmplz --discount_fallback defaults
_CHUNK_LINES = 50_000  # sentences per numpy pass: ~1M word strings (~60 MB) held at once
_BLOCK = 500_000  # n-grams estimated or written at once: bounds the temporaries (~50 MB of lines)


KENLM_MAX_ORDER = 6  # the highest order the pip-built kenlm module loads (its compile-time default)


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


def read_sentences(path: str | Path, kaldi: bool = False) -> Iterator[tuple[int, str]]:
    """Yield ``(line number, sentence)`` for every non-blank line of a text file (``.gz`` allowed).

    Args:
        path: one sentence per line, words separated by white space.
        kaldi: drop the first field of each line (a Kaldi ``text`` file's utterance id).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such text file")
    with _open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            if kaldi:
                parts = line.split(maxsplit=1)
                line = parts[1] if len(parts) == 2 else ""
            line = line.strip()
            if line:
                yield lineno, line


def _spelled(path: Path, kaldi: bool, tokenizer) -> Iterator[tuple[int, str]]:
    """``read_sentences``, each sentence rewritten as the tokenizer's units when one is given."""
    for lineno, sentence in read_sentences(path, kaldi):
        if tokenizer is not None:
            try:
                sentence = " ".join(tokenizer.units[i] for i in tokenizer.encode(sentence))
            except ValueError as err:
                raise ValueError(f"{path}:{lineno}: {err}") from None
        yield lineno, sentence


def _chunks(path: Path, kaldi: bool, tokenizer=None) -> Iterator[list[str]]:
    sentences = (s for _, s in _spelled(path, kaldi, tokenizer))
    while chunk := list(itertools.islice(sentences, _CHUNK_LINES)):
        yield chunk


def _vocabulary(path: Path, kaldi: bool, tokenizer=None) -> list[str]:
    """Pass 1: ``[<unk>, <s>, </s>, words sorted]``; rejects empty text and reserved tokens."""
    counts: Counter[str] = Counter()
    for chunk in _chunks(path, kaldi, tokenizer):
        counts.update(" ".join(chunk).split())
    if not counts:
        lines = sum(1 for _ in _open_text(path))
        raise ValueError(f"{path}:{max(lines, 1)}: no sentences in the text file (it is empty or blank)")
    for token in (BOS, EOS):
        if token in counts:
            lineno = next(n for n, s in _spelled(path, kaldi, tokenizer) if token in s.split())
            raise ValueError(f"{path}:{lineno}: reserved token {token!r} in the text (sentence marks are added)")
    counts.pop(UNK, None)
    return [UNK, BOS, EOS, *sorted(counts)]


def _unique_counts(keys: np.ndarray, counts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sort ``keys`` and sum the counts of equal keys (each key counts 1 when ``counts`` is None)."""
    if counts is None:
        keys = np.sort(keys)
    else:
        order = np.argsort(keys)
        keys, counts = keys[order], counts[order]
    if keys.size == 0:
        return keys, np.zeros(0, np.int64)
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    if counts is None:
        summed = np.diff(np.append(starts, keys.size))
    else:
        summed = np.add.reduceat(counts, starts)
    return keys[starts], summed.astype(np.int64)


def _merge(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Merge two sorted runs of unique keys, adding the counts of shared keys (one output allocation)."""
    (k1, c1), (k2, c2) = a, b
    pos = np.searchsorted(k1, k2)
    shared = k1[np.minimum(pos, max(k1.size - 1, 0))] == k2 if k1.size else np.zeros(k2.size, bool)
    c1 = c1.copy()
    c1[pos[shared]] += c2[shared]  # keys are unique, so no position repeats
    new = ~shared
    return np.insert(k1, pos[new], k2[new]), np.insert(c1, pos[new], c2[new])


class _RunMerger:
    """Sorted (keys, counts) runs merged like a binary counter: O(n log(n / chunk)) work in all."""

    def __init__(self):
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, keys: np.ndarray, counts: np.ndarray) -> None:
        self.runs.append((keys, counts))
        while len(self.runs) > 1 and 2 * self.runs[-1][0].size >= self.runs[-2][0].size:
            self._merge_top()

    def _merge_top(self) -> None:
        newer = self.runs.pop()
        self.runs.append(_merge(self.runs.pop(), newer))

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        while len(self.runs) > 1:
            self._merge_top()
        return self.runs[0] if self.runs else (np.zeros(0, np.int64), np.zeros(0, np.int64))


def _window_keys(ids: np.ndarray, starts: np.ndarray, n: int, bits: int, eos: int) -> np.ndarray:
    """Packed keys of the n-grams starting at ``starts`` that stay inside one sentence.

    ``ids`` must be padded with at least ``n`` trailing EOS so every window is in bounds.
    """
    key = np.zeros(starts.size, np.int64)
    valid = np.ones(starts.size, bool)
    for k in range(n):
        token = ids[starts + k]
        key = (key << bits) | token
        if k < n - 1:
            valid &= token != eos  # an n-gram may end with </s> but never run past it
    return key[valid]


@dataclass
class _Order:
    keys: np.ndarray  # (M,) int64 packed n-grams, sorted
    counts: np.ndarray  # (M,) int64 raw (highest order, <s>-initial) or adjusted counts
    kept: np.ndarray = field(default=None)  # (M,) bool survives pruning
    kept_keys: np.ndarray = field(default=None)  # (K,) int64 keys of the kept n-grams
    logp: np.ndarray = field(default=None)  # (K,) float64 log10 p of the kept n-grams
    backoff: np.ndarray = field(default=None)  # (K,) float64 log10 backoff of the kept n-grams


def _count(path: Path, kaldi: bool, tokenizer, order: int, index: dict[str, int],
           bits: int) -> tuple[list[_Order], int]:
    """Pass 2: highest-order counts and <s>-initial counts of every lower order."""
    bos, eos = index[BOS], index[EOS]
    top = _RunMerger()
    initial = [_RunMerger() for _ in range(order)]  # initial[k]: <s> w1 .. w_{k}, k + 1 words
    sentences = 0
    for chunk in _chunks(path, kaldi, tokenizer):
        tokens = f"{BOS} {f' {EOS} {BOS} '.join(chunk)} {EOS}".split()
        ids = np.fromiter(map(index.__getitem__, tokens), np.int64, len(tokens))
        padded = np.concatenate((ids, np.full(order, eos, np.int64)))
        top.add(*_unique_counts(_window_keys(padded, np.arange(max(ids.size - order + 1, 0)), order, bits, eos)))
        bos_at = np.flatnonzero(ids == bos)
        for k in range(1, order - 1):
            initial[k].add(*_unique_counts(_window_keys(padded, bos_at, k + 1, bits, eos)))
        sentences += len(chunk)
        log.info("counted %d sentences", sentences)
    orders = [_Order(*top.result())]
    for n in range(order - 1, 0, -1):
        higher = orders[0].keys
        suffixes = higher & ((1 << (bits * n)) - 1)  # drop the first word
        if n > 1:
            bos_keys, bos_counts = initial[n - 1].result()
        else:
            bos_keys, bos_counts = np.array([bos], np.int64), np.array([sentences], np.int64)
        left_keys, left_counts = _unique_counts(suffixes)  # distinct left extensions
        keys, counts = _unique_counts(np.concatenate((left_keys, bos_keys)), np.concatenate((left_counts, bos_counts)))
        orders.insert(0, _Order(keys, counts))
    if not np.isin(index[UNK], orders[0].keys):
        keys, counts = _unique_counts(np.append(orders[0].keys, index[UNK]), np.append(orders[0].counts, 0))
        orders[0] = _Order(keys, counts)
    return orders, sentences


def _discounts(counts: np.ndarray, n: int) -> np.ndarray:
    """Modified KN discounts ``[0, D1, D2, D3+]`` from counts of counts (Chen & Goodman 1998)."""
    t = [int(np.count_nonzero(counts == k)) for k in range(1, 5)]
    if min(t) > 0:
        y = t[0] / (t[0] + 2 * t[1])
        d = [k - (k + 1) * y * t[k] / t[k - 1] for k in (1, 2, 3)]
        if all(0 < d_k <= k for k, d_k in zip((1, 2, 3), d)):
            return np.array([0.0, *d])
    log.warning("order %d: counts of counts %s give no valid Kneser-Ney discounts (text too small); "
                "using %s", n, t, _FALLBACK_DISCOUNTS)
    return np.array([0.0, *_FALLBACK_DISCOUNTS])


def _mark_kept(orders: list[_Order], bits: int, prune: bool) -> None:
    """Top-down: keep n-grams above the singleton threshold and every prefix/suffix of a kept one."""
    for n in range(len(orders), 0, -1):
        o = orders[n - 1]
        o.kept = o.counts > 1 if prune and n > 1 else np.ones(o.keys.size, bool)
        if prune and 1 < n < len(orders):
            kept_up = orders[n].kept_keys
            o.kept |= np.isin(o.keys, np.concatenate((kept_up >> bits, kept_up & ((1 << (bits * n)) - 1))))
        o.kept_keys = o.keys if o.kept.all() else o.keys[o.kept]


def _find(table: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``keys`` in the sorted ``table`` and whether each is there."""
    if table.size == 0:
        return np.zeros(keys.size, np.int64), np.zeros(keys.size, bool)
    pos = np.minimum(np.searchsorted(table, keys), table.size - 1)
    return pos, table[pos] == keys


def _lookup(orders: list[_Order], keys: np.ndarray, n: int, bits: int) -> np.ndarray:
    """log10 p of n-gram ``keys`` (order ``n``) in the finished lower orders, backing off as ARPA does."""
    table = orders[n - 1]
    pos, found = _find(table.kept_keys, keys)
    out = np.where(found, table.logp[pos] if table.logp.size else 0.0, 0.0)
    missing = ~found
    if missing.any():
        assert n > 1, "every unigram is in the model"
        ctx = keys[missing] >> bits
        ctx_table = orders[n - 2]
        cpos, cfound = _find(ctx_table.kept_keys, ctx)
        bo = np.where(cfound, ctx_table.backoff[cpos], 0.0)
        out[missing] = bo + _lookup(orders, keys[missing] & ((1 << (bits * (n - 1))) - 1), n - 1, bits)
    return out


def _blocks(keys: np.ndarray, bits: int) -> Iterator[tuple[int, int]]:
    """``[a, b)`` ranges of about ``_BLOCK`` sorted n-grams that never split a context."""
    a = 0
    while a < keys.size:
        b = a + _BLOCK
        if b < keys.size:
            b = int(np.searchsorted(keys, (keys[b] >> bits) << bits))  # first n-gram of that context
            if b == a:
                b = int(np.searchsorted(keys, ((keys[a] >> bits) + 1) << bits))
        yield a, min(b, keys.size)
        a = b


def _estimate(orders: list[_Order], bits: int, bos: int) -> None:
    """Fill ``logp`` and ``backoff`` of every order, lowest first, in blocks of whole contexts."""
    uni = orders[0]
    predicted = uni.keys != bos
    d = _discounts(uni.counts[predicted], 1)
    total = uni.counts[predicted].sum()
    discount = d[np.minimum(uni.counts, 3)]
    gamma = discount[predicted].sum() / total
    p = (uni.counts - discount) / total + gamma / np.count_nonzero(predicted)
    uni.logp = np.where(predicted, np.log10(np.maximum(p, 1e-300)), -99.0).astype(np.float32)
    uni.backoff = np.zeros(uni.keys.size, np.float32)
    for n in range(2, len(orders) + 1):
        o, lower = orders[n - 1], orders[n - 2]
        d = _discounts(o.counts, n)
        o.logp = np.empty(o.kept_keys.size, np.float32)
        o.backoff = np.zeros(o.kept_keys.size, np.float32)
        done = 0  # kept n-grams before the current block
        for a, b in _blocks(o.keys, bits):
            keys, counts, kept = o.keys[a:b], o.counts[a:b], o.kept[a:b]
            ctx = keys >> bits
            starts = np.flatnonzero(np.concatenate(([True], ctx[1:] != ctx[:-1])))
            group = np.zeros(keys.size, np.int64)
            group[starts[1:]] = 1
            group = np.cumsum(group)  # (M,) context number of each n-gram
            discount = d[np.minimum(counts, 3)]
            denom = np.add.reduceat(counts, starts).astype(np.float64)
            gamma = np.add.reduceat(discount, starts) / denom
            u = (counts - discount) / denom[group]
            p_lower = 10.0 ** _lookup(orders, keys & ((1 << (bits * (n - 1))) - 1), n - 1, bits)
            p = u + gamma[group] * p_lower
            logp = np.log10(p[kept])
            o.logp[done : done + logp.size] = logp
            done += logp.size
            kept_lower = np.add.reduceat(np.where(kept, p_lower, 0.0), starts)
            pruned_u = np.add.reduceat(np.where(kept, 0.0, u), starts)
            # Renormalised backoff: equals gamma when nothing in the context was pruned.
            backoff = gamma + pruned_u / np.maximum(1.0 - kept_lower, 1e-12)
            has_kept = np.add.reduceat(kept.astype(np.int64), starts) > 0
            pos, found = _find(lower.kept_keys, ctx[starts][has_kept])
            assert found.all(), "the context of a kept n-gram is kept"
            lower.backoff[pos] = np.log10(backoff[has_kept])


def _write_arpa(orders: list[_Order], vocab: list[str], bits: int, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    words = np.array(vocab, dtype=object)
    mask = (1 << bits) - 1
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\\data\\\n")
        for n, o in enumerate(orders, 1):
            f.write(f"ngram {n}={int(o.kept.sum())}\n")
        for n, o in enumerate(orders, 1):
            f.write(f"\n\\{n}-grams:\n")
            keys = o.kept_keys
            has_bo = n < len(orders)
            for start in range(0, keys.size, _BLOCK):
                k = keys[start : start + _BLOCK]
                cols = [words[(k >> (bits * (n - 1 - i))) & mask] for i in range(n)]
                text = [" ".join(ws) for ws in zip(*cols)] if n > 1 else cols[0]
                logp = o.logp[start : start + _BLOCK].tolist()
                if has_bo:
                    bo = o.backoff[start : start + _BLOCK].tolist()
                    lines = [f"{p:.6f}\t{t}\t{b:.6f}\n" if b else f"{p:.6f}\t{t}\n" for p, t, b in zip(logp, text, bo)]
                else:
                    lines = [f"{p:.6f}\t{t}\n" for p, t in zip(logp, text)]
                f.write("".join(lines))
        f.write("\n\\end\\\n")
    tmp.replace(out)


def build_lm(text: str | Path, out: str | Path, order: int = LMBuildConfig.order, prune_singletons: bool = False,
             kaldi: bool = False, tokenizer=None) -> dict[int, int]:
    """Estimate an interpolated modified Kneser-Ney n-gram model and write it as ARPA.

    Args:
        text: one sentence per line (``.gz`` allowed); ``<s>``/``</s>`` are added, not expected.
        out: ARPA file to write (written to ``OUT.tmp`` first, then renamed).
        order: n-gram order, >= 2.
        prune_singletons: drop n-grams of order >= 2 seen once (adjusted count 1 below the top order).
        kaldi: ``text`` is a Kaldi text file; the first field of each line is dropped.
        tokenizer: spell the text in this tokenizer's units first: an LM over units, for lexicon-free search.

    Returns:
        n-grams written per order, ``{1: ..., 2: ..., ...}``.

    Raises:
        ValueError: ``FILE:LINE: ...`` on an empty text or a reserved token; too many words for the order.
    """
    text, out = Path(text), Path(out)
    if order < 2:
        raise ValueError(f"order: expected >= 2, got {order}")
    if order > KENLM_MAX_ORDER:
        log.warning("order %d: the kenlm package as built by pip loads at most order %d (KENLM_MAX_ORDER); "
                    "writing the ARPA file anyway", order, KENLM_MAX_ORDER)
    vocab = _vocabulary(text, kaldi, tokenizer)
    bits = max(1, (len(vocab) - 1).bit_length())
    if bits * order > 63:
        raise ValueError(f"order {order} with {len(vocab)} words needs {bits * order}-bit n-gram keys; "
                         f"at most 63 are supported (use order <= {63 // bits})")
    index = {w: i for i, w in enumerate(vocab)}
    orders, sentences = _count(text, kaldi, tokenizer, order, index, bits)
    _mark_kept(orders, bits, prune_singletons)
    _estimate(orders, bits, index[BOS])
    _write_arpa(orders, vocab, bits, out)
    sizes = {n: int(o.kept.sum()) for n, o in enumerate(orders, 1)}
    log.info("%s: %d sentences, %d words -> %s n-grams%s", out, sentences, len(vocab) - 3,
             "/".join(map(str, sizes.values())), " (singletons pruned)" if prune_singletons else "")
    return sizes


class ArpaLM:
    """A backoff n-gram model held in dicts: exact ARPA semantics, for checking and small models.

    Args:
        orders: ``orders[n - 1]`` maps an n-gram (tuple of words) to ``(log10 p, log10 backoff)``.
    """

    def __init__(self, orders: list[dict[tuple[str, ...], tuple[float, float]]]):
        self.orders = orders
        self.order = len(orders)

    @property
    def vocab(self) -> list[str]:
        """Every unigram, ``<s>`` included."""
        return [w for (w,) in self.orders[0]]

    def log10_prob(self, context: tuple[str, ...], word: str) -> float:
        """log10 p(word | context), backing off; unknown words score as ``<unk>``."""
        word = word if (word,) in self.orders[0] else UNK
        context = context[max(0, len(context) - self.order + 1) :]
        context = tuple(w if (w,) in self.orders[0] else UNK for w in context)
        backoff = 0.0
        for start in range(len(context) + 1):
            h = context[start:]
            entry = self.orders[len(h)].get(h + (word,))
            if entry is not None:
                return backoff + entry[0]
            if h:
                backoff += self.orders[len(h) - 1].get(h, (0.0, 0.0))[1]
        raise ValueError(f"{word!r} and {UNK!r} are both missing from the unigrams")

    def score(self, sentence: str) -> float:
        """log10 p(sentence </s> | <s>)."""
        context: tuple[str, ...] = (BOS,)
        total = 0.0
        for word in sentence.split() + [EOS]:
            total += self.log10_prob(context, word)
            context = context + (word,)
        return total

    def perplexity(self, sentences: Iterable[str]) -> float:
        """Corpus perplexity, ``</s>`` counted as a word (as KenLM does)."""
        total, words = 0.0, 0
        for s in sentences:
            total += self.score(s)
            words += len(s.split()) + 1
        return 10.0 ** (-total / words)


def _arpa_lines(path: Path) -> Iterator[tuple[int, str]]:
    with _open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            yield lineno, line.strip()


def _parse_header(path: Path, lines: Iterator[tuple[int, str]]) -> tuple[dict[int, int], int]:
    """``ngram N=count`` lines after ``\\data\\``; returns the counts and the last line number read."""
    lineno = 0
    for lineno, line in lines:
        if line:
            if line != "\\data\\":
                raise ValueError(f"{path}:{lineno}: expected '\\data\\' to start an ARPA file, got {line[:40]!r}")
            break
    else:
        raise ValueError(f"{path}:{max(lineno, 1)}: empty file, expected an ARPA header '\\data\\'")
    counts: dict[int, int] = {}
    for lineno, line in lines:
        if not line:
            if counts:
                return counts, lineno
            continue
        head, _, value = line.partition("=")
        try:
            n, count = int(head.removeprefix("ngram ")), int(value)
        except ValueError:
            raise ValueError(f"{path}:{lineno}: expected 'ngram N=COUNT', got {line[:40]!r}") from None
        if not head.startswith("ngram ") or n != len(counts) + 1 or count < 0:
            raise ValueError(f"{path}:{lineno}: expected 'ngram {len(counts) + 1}=COUNT', got {line[:40]!r}")
        counts[n] = count
    raise ValueError(f"{path}:{lineno}: the ARPA header ends before any n-gram section")


def read_arpa(path: str | Path) -> ArpaLM:
    """Load and check an ARPA file (``.gz`` allowed).

    Raises:
        ValueError: ``FILE:LINE: ...`` at the first malformed line, or a count that differs from the header.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ARPA file")
    lines = _arpa_lines(path)
    counts, lineno = _parse_header(path, lines)
    orders: list[dict[tuple[str, ...], tuple[float, float]]] = []
    section_line = lineno
    n = 0
    for lineno, line in lines:
        if not line:
            continue
        if line.startswith("\\"):
            if orders and len(orders[-1]) != counts[n]:
                raise ValueError(f"{path}:{section_line}: header says ngram {n}={counts[n]}, "
                                 f"section has {len(orders[-1])}")
            if line == "\\end\\":
                break
            n = len(orders) + 1
            expected = f"\\{n}-grams:" if n in counts else "\\end\\"
            if line != expected:
                raise ValueError(f"{path}:{lineno}: expected {expected!r}, got {line[:40]!r}")
            orders.append({})
            section_line = lineno
            continue
        if not orders:
            raise ValueError(f"{path}:{lineno}: n-gram line before the first '\\1-grams:' section")
        fields = line.split()
        if len(fields) not in (n + 1, n + 2):
            raise ValueError(f"{path}:{lineno}: expected 'LOGPROB' + {n} word(s) [+ BACKOFF], got {line[:60]!r}")
        try:
            logp = float(fields[0])
            backoff = float(fields[n + 1]) if len(fields) == n + 2 else 0.0
        except ValueError:
            raise ValueError(f"{path}:{lineno}: log-probability or backoff is not a number: {line[:60]!r}") from None
        if logp > 0 or math.isnan(logp):
            raise ValueError(f"{path}:{lineno}: log10 probability must be <= 0, got {fields[0]}")
        orders[-1][tuple(fields[1 : n + 1])] = (logp, backoff)
    else:
        raise ValueError(f"{path}:{lineno}: file ends without '\\end\\'")
    if len(orders) != len(counts):
        raise ValueError(f"{path}:{lineno}: header announces {len(counts)} orders, file has {len(orders)}")
    if (UNK,) not in orders[0]:
        orders[0][(UNK,)] = (-100.0, 0.0)  # KenLM's convention for a model without <unk>
    return ArpaLM(orders)


def arpa_words(path: str | Path) -> list[str]:
    """The unigrams of an ARPA file without ``<s>``, ``</s>``, ``<unk>``, in file order."""
    path = Path(path)
    lines = _arpa_lines(path)
    _parse_header(path, lines)
    words: list[str] = []
    in_unigrams = False
    for lineno, line in lines:
        if line.startswith("\\"):
            if in_unigrams:
                break
            in_unigrams = line == "\\1-grams:"
            continue
        if in_unigrams and line:
            fields = line.split()
            if len(fields) not in (2, 3):
                raise ValueError(f"{path}:{lineno}: expected 'LOGPROB WORD [BACKOFF]', got {line[:60]!r}")
            if fields[1] not in (BOS, EOS, UNK):
                words.append(fields[1])
    return words
