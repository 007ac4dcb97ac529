"""Greedy and beam decoding."""

from __future__ import annotations

import json

import torch

from asr.model.checkpoint import load_model, model_package, save_atomic
from asr.config import EncoderConfig, ModelConfig
from asr.data.cuts import load_cuts
from asr.decoding.search import BeamSearch, GreedySearch, Hypothesis, decode_cuts, greedy_search, write_hypotheses
from asr.model.ctc import CTCModel
from asr.data.tokenizer import CharTokenizer, PhoneTokenizer

TOKENIZER = CharTokenizer.train(["AB BA"])  # units: <blk> | A B


def _one_hot(ids, vocab=4, peak=0.9):
    probs = torch.full((len(ids), vocab), (1 - peak) / (vocab - 1))
    probs[torch.arange(len(ids)), torch.tensor(ids)] = peak
    return probs.log()


def test_greedy_collapses_repeats_and_drops_blanks():
    frames = _one_hot([2, 2, 0, 2, 3, 3, 1, 3, 0, 0])  # A A - A B B | B - -
    log_probs = torch.stack([frames, frames])
    hyps = greedy_search(log_probs, torch.tensor([10, 4]), TOKENIZER)
    assert hyps[0].tokens == [2, 2, 3, 1, 3]
    assert hyps[0].text == "AAB B"
    assert hyps[1].tokens == [2, 2] and hyps[1].text == "AA"


def test_beam_without_lm_matches_greedy_on_peaked_posteriors():
    torch.manual_seed(0)
    ids = torch.randint(0, 4, (3, 25))
    log_probs = torch.stack([_one_hot(row.tolist(), peak=0.97) for row in ids])
    lens = torch.tensor([25, 20, 9])
    beam = BeamSearch(TOKENIZER, beam_size=8)(log_probs, lens)
    greedy = greedy_search(log_probs, lens, TOKENIZER)
    assert [h.text for h in beam] == [h.text for h in greedy]


def test_batched_decoding_equals_one_by_one(an4_manifests, tmp_path):
    """Decoding real AN4 test audio in padded batches gives the same hypotheses as one at a time."""
    torch.manual_seed(0)
    tokenizer = CharTokenizer.train(["ABCDEFGHIJKLMNOPQRSTUVWXYZ"])
    model = CTCModel(ModelConfig(encoder=EncoderConfig(num_layers=2, hidden_size=32)), len(tokenizer.units))
    save_atomic(model_package(model, tokenizer), tmp_path / "m.pt")
    model, tokenizer = load_model(tmp_path / "m.pt")
    cuts = load_cuts(an4_manifests / "an4_cuts_test.jsonl.gz").subset(first=8)
    batched = {i: h for i, _, h in decode_cuts(model, cuts, GreedySearch(tokenizer), max_duration=1000)}
    single = {i: h for i, _, h in decode_cuts(model, cuts, GreedySearch(tokenizer), max_duration=0.1)}
    assert len(batched) == 8
    assert {i: h.tokens for i, h in batched.items()} == {i: h.tokens for i, h in single.items()}
    for i in batched:
        assert abs(batched[i].score - single[i].score) < 1e-3


def test_write_hypotheses(tmp_path):
    results = [("u2", "B", Hypothesis([3], "B", -1.5)), ("u1", "A", Hypothesis([], "", -0.5))]
    path = write_hypotheses(results, tmp_path, "test-greedy")
    assert path.read_text() == "u1\nu2 B\n"
    rows = [json.loads(line) for line in (tmp_path / "hyp-test-greedy.jsonl").read_text().splitlines()]
    assert rows == [{"id": "u1", "text": "", "score": -0.5}, {"id": "u2", "text": "B", "score": -1.5}]


PHONES = PhoneTokenizer.train(["sil aa b", "ax-h sil"])  # units: <blk> aa ax-h b sil


def test_phone_greedy_and_beam_give_phones_with_times():
    """A phone model's "words" are its phones: one span per emitted phone, also for repeats."""
    frames = [4, 4, 0, 1, 0, 1, 3, 3, 3, 0, 2, 4]  # sil - aa - aa b - ax-h sil
    log_probs = _one_hot(frames, vocab=5, peak=0.97)[None]
    lens = torch.tensor([len(frames)])
    greedy = greedy_search(log_probs, lens, PHONES, frame_shift=0.03)[0]
    beam = BeamSearch(PHONES, beam_size=8, frame_shift=0.03)(log_probs, lens)[0]
    for hyp in (greedy, beam):
        assert hyp.text == "sil aa aa b ax-h sil"
        assert hyp.tokens == [4, 1, 1, 3, 2, 4]
        assert [w.word for w in hyp.words] == hyp.text.split()
        assert [w.start for w in hyp.words] == [0.0, 0.09, 0.15, 0.18, 0.3, 0.33]
        assert hyp.words[-1].end == 0.36
