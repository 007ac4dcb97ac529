"""Tests for asr.scoring.align: sclite's costs and tie-breaking, one pair and batched.

The expected operations of ``test_known_alignments`` are those of ``sctk sclite -s -o sgml``.
"""

import random

import pytest

from asr.scoring.align import align_batch, align_pair


@pytest.mark.parametrize("ref, hyp, ops", [
    ("", "", ""),
    ("a b", "", "DD"),
    ("", "x y", "II"),
    ("a b c", "a b c", "CCC"),
    ("a b", "b c", "DCI"),
    ("the cat sat", "THE sat", "DSC"),
    ("foo-bar baz", "foo bar baz", "ISC"),
    ("b b", "b", "DC"),
    ("a b c d", "x y", "DDSS"),
    ("a", "x y z", "IIS"),
])
def test_known_alignments(ref, hyp, ops):
    assert align_pair(ref.split(), hyp.split()) == ops
    assert align_batch([(ref.split(), hyp.split())]) == [ops]


def test_batch_equals_pairwise_on_random_ties():
    rng = random.Random(7)
    pairs = []
    for _ in range(3000):
        vocab = "abcde"[:rng.randint(1, 5)]
        pairs.append((rng.choices(vocab, k=rng.randint(0, 12)), rng.choices(vocab, k=rng.randint(0, 12))))
    expected = [align_pair(r, h) for r, h in pairs]
    assert align_batch(pairs, batch_size=97) == expected
    assert align_batch(pairs) == expected
    assert align_batch([]) == []


def test_operations_consume_both_sequences():
    rng = random.Random(3)
    for _ in range(200):
        ref = rng.choices("xyz", k=rng.randint(0, 9))
        hyp = rng.choices("xyz", k=rng.randint(0, 9))
        ops = align_pair(ref, hyp)
        assert sum(c != "I" for c in ops) == len(ref)
        assert sum(c != "D" for c in ops) == len(hyp)
