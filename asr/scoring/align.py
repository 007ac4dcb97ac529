"""sclite's alignment: its edit costs and tie-breaking, one pair at a time or batched with numpy.

``sctk sclite`` (``net_dp.c``, ``wwd_WORD`` in ``word.c``) minimises 0 per correct token, 4 per
substitution and 3 per insertion or deletion, not a plain edit distance, so its counts can differ
from a Levenshtein alignment's (``A B`` vs ``B C`` is one deletion and one insertion for sclite,
two substitutions for jiwer). Each cell prefers the diagonal (correct or substitution) when it is
no worse than both others, then a deletion when strictly better than the insertion, and the
backtrace starts from the last tokens. Reproducing this gives sclite's counts and alignments.
"""

from collections.abc import Sequence
from itertools import chain

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
    sub_cost = (hyp[:, None, :] != ref[:, :, None]).astype(np.int32) * SUB_COST
    prev = np.broadcast_to(cols, (batch, width)).copy()
    back = np.empty((batch, n + 1, width), dtype=np.int8)
    back[:, 0, :] = _INS
    back[:, 1:, 0] = _DEL
    best = np.empty_like(prev)
    for i in range(1, n + 1):
        diag = prev[:, :-1] + sub_cost[:, i - 1]
        up = prev + INDEL_COST
        best[:, 0] = up[:, 0]
        np.minimum(diag, up[:, 1:], out=best[:, 1:])
        cur = np.minimum.accumulate(best - cols, axis=1) + cols
        left = cur[:, :-1] + INDEL_COST
        np.multiply((up[:, 1:] >= left).view(np.int8) + np.int8(1), diag != cur[:, 1:], out=back[:, i, 1:])
        prev = cur
    rows = np.arange(batch)
    i = np.full(batch, n, dtype=np.intp)
    j = hyp_lens.astype(np.intp)
    length = n + hyp.shape[1]
    codes = np.full((batch, length), 255, dtype=np.uint8)
    for k in range(length - 1, -1, -1):
        active = (i > 0) | (j > 0)
        if not active.any():
            break
        step = back[rows, i, j]
        wrong = sub_cost[rows, np.maximum(i - 1, 0), np.maximum(j - 1, 0)] != 0
        codes[:, k] = np.where(active, _CODES[np.where(step == _DIAG, wrong, step + 1)], 255)
        i -= active & (step != _INS)
        j -= active & (step != _DEL)
    texts = codes.tobytes().decode("latin-1")
    return [texts[b * length:(b + 1) * length].lstrip("\xff") for b in range(batch)]


def align_batch(pairs: Sequence[tuple[Sequence[str], Sequence[str]]], batch_size: int = 4096) -> list[str]:
    """:func:`align_pair` for many pairs (same results), vectorised over pairs of equal reference length."""
    if not pairs:
        return []
    refs = list(chain.from_iterable(r for r, _ in pairs))
    hyps = list(chain.from_iterable(h for _, h in pairs))
    vocab = {t: k for k, t in enumerate(dict.fromkeys(chain(refs, hyps)))}
    ref_ids = np.fromiter(map(vocab.__getitem__, refs), dtype=np.int32, count=len(refs))
    hyp_ids = np.append(np.fromiter(map(vocab.__getitem__, hyps), dtype=np.int32, count=len(hyps)), -1)
    ref_lens = np.fromiter(map(len, (r for r, _ in pairs)), dtype=np.intp, count=len(pairs))
    hyp_lens = np.fromiter(map(len, (h for _, h in pairs)), dtype=np.intp, count=len(pairs))
    ref_start = np.cumsum(ref_lens) - ref_lens
    hyp_start = np.cumsum(hyp_lens) - hyp_lens
    order = np.argsort(ref_lens, kind="stable")
    out: list[str] = [""] * len(pairs)
    bounds = np.flatnonzero(np.diff(ref_lens[order])) + 1
    for group in np.split(order, bounds):
        for chunk in np.array_split(group, -(-len(group) // batch_size)):
            n, lens = int(ref_lens[chunk[0]]), hyp_lens[chunk]
            width = int(lens.max())
            if n == 0 or width == 0:
                for k, m in zip(chunk.tolist(), lens.tolist()):
                    out[k] = "D" * n + "I" * m
                continue
            ref = ref_ids[ref_start[chunk, None] + np.arange(n)]
            cols = np.arange(width)
            hyp = hyp_ids[np.where(cols < lens[:, None], hyp_start[chunk, None] + cols, len(hyp_ids) - 1)]
            for k, ops in zip(chunk.tolist(), _align_group(ref, hyp, lens)):
                out[k] = ops
    return out
