"""Units to words with times and confidences: the one word type and the one grouping function.

Decoding JSON, transcripts, subtitles, streaming results and the server all report words as
``Word`` built by ``group_words`` from a frame alignment: the unit each output frame is aligned
to (blank = 0), e.g. the best path of a greedy search or the forced alignment of a beam search's
text. Output frame ``t`` covers ``[t * frame_shift, (t + 1) * frame_shift)`` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Word", "WordBoundaries", "group_words", "labels_from_path"]


@dataclass(frozen=True)
class Word:
    word: str  # the word as the tokenizer spells it
    start: float  # seconds: start of the first frame aligned to its first unit
    end: float  # seconds: end of the last frame aligned to its last unit
    conf: float  # mean posterior of its units over the frames aligned to them, 0 to 1


class WordBoundaries:
    """Per unit: is it a word separator, does it start a word (by tokenizer kind)."""

    def __init__(self, tokenizer):
        units = tokenizer.units
        if tokenizer.unit_words:  # phones: every unit is a word of its own
            self.separator = [False] * len(units)
            self.starts_word = [True] * len(units)
        elif tokenizer.sil_token != units[tokenizer.blank_id]:  # characters: "|" between words
            self.separator = [u == tokenizer.sil_token for u in units]
            self.starts_word = [False] * len(units)
        else:  # sentencepiece: a piece starting with "▁" starts a word; "▁" alone separates
            self.separator = [u == "\u2581" for u in units]
            self.starts_word = [u.startswith("\u2581") for u in units]
        self.separator[tokenizer.blank_id] = False


def labels_from_path(tokens: list[int], frames: list[int], num_frames: int) -> Tensor:
    """(T,) int64 frame labels with ``tokens[i]`` at ``frames[i]`` and blanks elsewhere (a search's path)."""
    labels = torch.zeros(num_frames, dtype=torch.int64)
    if tokens:
        labels[torch.tensor(frames, dtype=torch.int64)] = torch.tensor(tokens, dtype=torch.int64)
    return labels


def group_words(tokenizer, labels: Tensor, log_probs: Tensor | None, frame_shift: float, offset: float = 0.0,
                boundaries: WordBoundaries | None = None) -> list[Word]:
    """Words of one aligned utterance or segment.

    Consecutive frames with the same label form one unit (as in CTC's collapse); units between
    separators (or from one word-starting unit to the next) form a word.

    Args:
        tokenizer: the model's tokenizer.
        labels (Tensor): (T,) int64, the unit aligned to each frame (blank = 0).
        log_probs (Tensor, optional): (T, V) float, the model's output for these frames; without
            it every confidence is 0 (unknown).
        frame_shift: seconds per output frame.
        offset: seconds from the start of the file to frame 0.
        boundaries: precomputed ``WordBoundaries(tokenizer)`` (saves work per call).

    Returns:
        The words in time order, empty ones (a lone separator) left out.
    """
    if labels.numel() == 0:
        return []
    bounds = boundaries or WordBoundaries(tokenizer)
    labels = labels.to("cpu", torch.int64)
    if log_probs is None:
        posts = torch.zeros(labels.numel())
    else:
        posts = log_probs.detach().to("cpu", torch.float32).gather(1, labels[:, None]).squeeze(1).exp()  # (T,)
    units, counts = torch.unique_consecutive(labels, return_counts=True)
    ends = counts.cumsum(0)
    starts = ends - counts
    words: list[Word] = []
    current: list[tuple[int, int, int]] = []  # (unit, first frame, end frame) of the open word

    def close() -> None:
        if current:
            text = tokenizer.decode([u for u, _, _ in current])
            conf = torch.cat([posts[s:e] for _, s, e in current]).mean()
            if text:
                start, end = offset + current[0][1] * frame_shift, offset + current[-1][2] * frame_shift
                words.append(Word(text, round(start, 6), round(end, 6), float(conf)))  # 6: no float noise
            current.clear()

    for unit, start, end in zip(units.tolist(), starts.tolist(), ends.tolist()):
        if unit == tokenizer.blank_id:
            continue
        if bounds.separator[unit]:
            close()
            continue
        if bounds.starts_word[unit]:
            close()
        current.append((unit, start, end))
    close()
    return words
