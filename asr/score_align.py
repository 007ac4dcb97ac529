"""sclite's alignment: its edit costs and tie-breaking, one pair at a time or batched with numpy.

``sctk sclite`` (``net_dp.c``, ``wwd_WORD`` in ``word.c``) minimises 0 per correct token, 4 per
substitution and 3 per insertion or deletion, not a plain edit distance, so its counts can differ
from a Levenshtein alignment's (``A B`` vs ``B C`` is one deletion and one insertion for sclite,
two substitutions for jiwer). Each cell prefers the diagonal (correct or substitution) when it is
no worse than both others, then a deletion when strictly better than the insertion, and the
backtrace starts from the last tokens. Reproducing this gives sclite's counts and alignments.
"""

from collections.abc import Sequence

import numpy as np

__all__ = ["SUB_COST", "INDEL_COST", "align_pair", "align_batch"]

SUB_COST = 4
INDEL_COST = 3
_DIAG, _DEL, _INS = 0, 1, 2
_CODES = np.frombuffer(b"CSDI", dtype=np.uint8)


def align_pair(ref: Sequence[str], hyp: Sequence[str]) -> str:
    """Edit operations of sclite's alignment of ``hyp`` to ``ref``, one letter (C/S/D/I) per column."""
    n, m = len(ref), len(hyp)
    back = [[_INS] * (m + 1)] + [[_DEL] + [_DIAG] * m for _ in range(n)]
    prev = [INDEL_COST * j for j in range(m + 1)]
    for i in range(1, n + 1):
        cur = [INDEL_COST * i] + [0] * m
        row, r = back[i], ref[i - 1]
        for j in range(1, m + 1):
            diag = prev[j - 1] + (0 if r == hyp[j - 1] else SUB_COST)
            up = prev[j] + INDEL_COST
            left = cur[j - 1] + INDEL_COST
            if diag <= up and diag <= left:
                cur[j] = diag
            elif up < left:
                cur[j], row[j] = up, _DEL
            else:
                cur[j], row[j] = left, _INS
        prev = cur
    ops = []
    i, j = n, m
    while i > 0 or j > 0:
        step = back[i][j]
        if step == _DIAG:
            i, j = i - 1, j - 1
            ops.append("C" if ref[i] == hyp[j] else "S")
        elif step == _DEL:
            i -= 1
            ops.append("D")
        else:
            j -= 1
            ops.append("I")
    return "".join(reversed(ops))


def _align_group(ref: np.ndarray, hyp: np.ndarray, hyp_lens: np.ndarray) -> list[str]:
    """Align B references of one length n (``ref`` (B, n)) with right-padded hypotheses (B, M).

    Row i of the cost table is computed for the whole batch at once: the insertion chain
    ``cur[j] = min(t[j], cur[j-1] + 3)`` is a running minimum of ``t[j] - 3j`` plus ``3j``.
    """
    batch, n = ref.shape
    width = hyp.shape[1] + 1
    cols = np.arange(width, dtype=np.int32) * INDEL_COST
    prev = np.broadcast_to(cols, (batch, width)).copy()
    back = np.empty((batch, n + 1, width), dtype=np.int8)
    back[:, 0, :] = _INS
    back[:, 1:, 0] = _DEL
    for i in range(1, n + 1):
        same = hyp == ref[:, i - 1:i]
        diag = prev[:, :-1] + np.where(same, 0, SUB_COST).astype(np.int32)
        up = prev + INDEL_COST
        best = up.copy()
        np.minimum(diag, up[:, 1:], out=best[:, 1:])
        cur = np.minimum.accumulate(best - cols, axis=1) + cols
        left = cur[:, :-1] + INDEL_COST
        step = np.where(up[:, 1:] < left, _DEL, _INS).astype(np.int8)
        step[(diag <= up[:, 1:]) & (diag <= left)] = _DIAG
        back[:, i, 1:] = step
        prev = cur
    rows = np.arange(batch)
    i = np.full(batch, n)
    j = hyp_lens.astype(np.int64)
    length = n + hyp.shape[1]
    codes = np.full((batch, length), 255, dtype=np.uint8)
    for k in range(length - 1, -1, -1):
        active = (i > 0) | (j > 0)
        if not active.any():
            break
        step = back[rows, i, j]
        is_diag, is_del = active & (step == _DIAG), active & (step == _DEL)
        is_ins = active & (step == _INS)
        wrong = ref[rows, np.maximum(i - 1, 0)] != hyp[rows, np.maximum(j - 1, 0)]
        code = np.where(is_del, 2, np.where(is_ins, 3, wrong.astype(np.uint8)))
        codes[:, k] = np.where(active, _CODES[code], 255)
        i = i - (is_diag | is_del)
        j = j - (is_diag | is_ins)
    texts = codes.tobytes().decode("latin-1")
    return [texts[b * length:(b + 1) * length].lstrip("\xff") for b in range(batch)]


def align_batch(pairs: Sequence[tuple[Sequence[str], Sequence[str]]], batch_size: int = 4096) -> list[str]:
    """:func:`align_pair` for many pairs (same results), vectorised over pairs of equal reference length."""
    vocab: dict[str, int] = {}
    ids = [([vocab.setdefault(t, len(vocab)) for t in r], [vocab.setdefault(t, len(vocab)) for t in h])
           for r, h in pairs]
    by_len: dict[int, list[int]] = {}
    for k, (r, _) in enumerate(ids):
        by_len.setdefault(len(r), []).append(k)
    out: list[str] = [""] * len(pairs)
    for n, members in by_len.items():
        for start in range(0, len(members), batch_size):
            chunk = members[start:start + batch_size]
            hyp_lens = np.array([len(ids[k][1]) for k in chunk], dtype=np.int64)
            if n == 0 or hyp_lens.max() == 0:
                for k, m in zip(chunk, hyp_lens):
                    out[k] = "D" * n + "I" * int(m)
                continue
            ref = np.array([ids[k][0] for k in chunk], dtype=np.int32).reshape(len(chunk), n)
            hyp = np.full((len(chunk), int(hyp_lens.max())), -1, dtype=np.int32)
            for b, k in enumerate(chunk):
                hyp[b, :hyp_lens[b]] = ids[k][1]
            for k, ops in zip(chunk, _align_group(ref, hyp, hyp_lens)):
                out[k] = ops
    return out
