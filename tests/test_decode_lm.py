"""Beam search with a lexicon and an n-gram LM, word times, n-best, workers and tuning."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import torch

from asr.cli import main
from asr.data.cuts import load_cuts
from asr.decoding.search import BeamSearch, decode_cuts, frame_shift, greedy_search
from asr.decoding.lexicon import build_lexicon, write_lexicon
from asr.decoding.lm import build_lm
from asr.config import SearchConfig
from asr.data.tokenizer import CharTokenizer
from asr.model.checkpoint import load_model
from asr.decoding.resolve import LMParams, read_lm_params, resolve_search, write_lm_params
from asr.decoding.tune import best_params, neighbourhood_wers, search_points, tune
from helpers import random_letter_model, word_lm_and_lexicon

TOKENIZER = CharTokenizer.train(["THE CAT CAR AT"])  # <blk> | A C E H R T
LM_TEXT = ["THE CAT", "THE CAT", "THE CAT SAT", "A CAR"]
SHIFT = 0.03
# "THE CAT", but the last letter sounds a little more like R: frames of (unit -> probability)
FRAMES = ["T", "-", "H", "-", "E", "|", "-", "C", "-", "A", "-", {"R": 0.55, "T": 0.4}, "-", "-"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The model's OpenMP threads would spin against the search workers on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _emissions(frames=FRAMES, tokenizer=TOKENIZER) -> torch.Tensor:
    """(1, T, V) log-probs: each frame puts 0.95 (or the given shares) on its units, the rest spread evenly."""
    rows = []
    for frame in frames:
        shares = frame if isinstance(frame, dict) else {frame: 0.95}
        row = torch.full((len(tokenizer.units),), (1 - sum(shares.values())) / (len(tokenizer.units) - len(shares)))
        for unit, p in shares.items():
            row[tokenizer.units.index("<blk>" if unit == "-" else unit)] = p
        rows.append(row)
    return torch.stack(rows).log()[None]


@pytest.fixture(scope="module")
def lm_files(tmp_path_factory) -> tuple[Path, Path]:
    """A word 2-gram and the lexicon of its spellable words (SAT has an S, which is no unit)."""
    out = tmp_path_factory.mktemp("lm")
    (out / "text.txt").write_text("\n".join(LM_TEXT))
    build_lm(out / "text.txt", out / "lm.arpa", order=2)
    lexicon, unspellable = build_lexicon(["A", "CAR", "CAT", "SAT", "THE"], TOKENIZER)
    assert unspellable == ["SAT"]
    return out / "lm.arpa", write_lexicon(lexicon, out / "lexicon.txt")


def _decode(search: BeamSearch, emissions=None):
    emissions = _emissions() if emissions is None else emissions
    return search(emissions, torch.tensor([emissions.size(1)]))[0]


def test_lm_overrules_the_acoustics(lm_files):
    lm, lexicon = lm_files
    assert _decode(BeamSearch(TOKENIZER, 8)).text == "THE CAR"  # lexicon-free, no LM
    assert _decode(BeamSearch(TOKENIZER, 8, lexicon=lexicon)).text == "THE CAR"  # lexicon, no LM
    assert _decode(BeamSearch(TOKENIZER, 8, lexicon=lexicon, lm=lm, lm_weight=2.0)).text == "THE CAT"


def test_last_word_is_kept_without_a_trailing_separator(lm_files):
    lm, lexicon = lm_files
    frames = ["T", "H", "E", "|", "C", "A", "T"]  # the model ends on the last letter, no "|"
    hyp = _decode(BeamSearch(TOKENIZER, 8, lexicon=lexicon, lm=lm, lm_weight=1.0), _emissions(frames))
    assert hyp.text == "THE CAT"
    assert hyp.tokens == [TOKENIZER.units.index(c) for c in "THECAT"]


def test_word_times_of_greedy_and_beam_search(lm_files):
    lm, lexicon = lm_files
    expected = [("THE", 0.0, 0.15), ("CAT", 0.21, 0.36)]  # T at frame 0, E at 4; C at 7, last letter at 11
    greedy = greedy_search(_emissions(), torch.tensor([len(FRAMES)]), TOKENIZER, frame_shift=SHIFT)[0]
    beam = _decode(BeamSearch(TOKENIZER, 8, lexicon=lexicon, lm=lm, lm_weight=2.0, frame_shift=SHIFT))
    free = _decode(BeamSearch(TOKENIZER, 8, frame_shift=SHIFT))
    assert [(w.word, w.start, w.end) for w in beam.words] == [(w, pytest.approx(s), pytest.approx(e))
                                                              for w, s, e in expected]
    assert [(w.start, w.end) for w in greedy.words] == [(w.start, w.end) for w in beam.words]
    assert [w.word for w in greedy.words] == [w.word for w in free.words] == ["THE", "CAR"]
    assert greedy_search(_emissions(), torch.tensor([len(FRAMES)]), TOKENIZER)[0].words == ()


def test_nbest_is_sorted_and_starts_with_the_best(lm_files):
    lm, lexicon = lm_files
    hyp = _decode(BeamSearch(TOKENIZER, 16, lexicon=lexicon, lm=lm, lm_weight=2.0, nbest=3))
    assert 2 <= len(hyp.nbest) <= 3
    assert hyp.nbest[0].text == hyp.text and hyp.nbest[0].score == hyp.score
    assert [h.score for h in hyp.nbest] == sorted((h.score for h in hyp.nbest), reverse=True)
    assert "THE CAR" in [h.text for h in hyp.nbest]
    assert _decode(BeamSearch(TOKENIZER, 16, lexicon=lexicon, lm=lm)).nbest == ()


def test_reweighted_search_shares_the_loaded_lm(lm_files):
    lm, lexicon = lm_files
    search = BeamSearch(TOKENIZER, 8, lexicon=lexicon, lm=lm, lm_weight=2.0)
    acoustic_only = search.reweighted(lm_weight=0.0, word_score=0.0)
    assert acoustic_only._kenlm is search._kenlm
    assert (_decode(acoustic_only).text, _decode(search).text) == ("THE CAR", "THE CAT")


def test_lexicon_free_search_with_a_unit_lm(tmp_path):
    (tmp_path / "t.txt").write_text("\n".join(LM_TEXT[:3]))
    build_lm(tmp_path / "t.txt", tmp_path / "units.arpa", order=4, tokenizer=CharTokenizer.train(["THE CAT SA"]))
    hyp = _decode(BeamSearch(TOKENIZER, 8, lm=tmp_path / "units.arpa", lm_weight=2.0))
    assert hyp.text == "THE CAT"


def test_malformed_arpa_is_one_error_naming_file_and_line(lm_files, tmp_path):
    _, lexicon = lm_files
    bad = tmp_path / "bad.arpa"
    bad.write_text("\\data\\\nngram 1=2\nngram 2=0\n\n\\1-grams:\n-1.0\t<s>\n-x\t</s>\n\n\\2-grams:\n\n\\end\\\n")
    for options in (dict(lexicon=lexicon), {}):
        with pytest.raises(ValueError, match=rf"^{re.escape(str(bad))}:7: log-probability or backoff"):
            BeamSearch(TOKENIZER, 8, lm=bad, **options)


def test_lexicon_with_a_unit_the_model_lacks_is_an_error(lm_files, tmp_path):
    lm, _ = lm_files
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("THE\tT H E |\nSAT\tS A T |\n")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(lexicon))}:2: the model cannot spell 'SAT': unit 'S'"):
        BeamSearch(TOKENIZER, 8, lexicon=lexicon, lm=lm)


# ------------------------------------------------------------ real audio, tiny random model


@pytest.fixture(scope="module")
def tiny(an4_manifests, tmp_path_factory):
    """A random 1x16 model over letters, the first 6 AN4 test cuts, a word 3-gram and its lexicon."""
    out = tmp_path_factory.mktemp("tiny")
    word_lm_and_lexicon(random_letter_model(out), an4_manifests / "text_train", out)
    return out, load_cuts(an4_manifests / "an4_cuts_test.jsonl.gz").subset(first=6)


def test_worker_processes_give_the_same_hypotheses(tiny):
    out, cuts = tiny
    model, tokenizer = load_model(out / "model.pt")
    options = dict(lexicon=out / "lexicon.txt", lm=out / "lm.arpa", lm_weight=1.0, word_score=2.0, nbest=2)
    search = BeamSearch(tokenizer, 8, frame_shift=frame_shift(model), **options)
    alone = list(decode_cuts(model, cuts, search, max_duration=8, num_workers=0))
    pooled = list(decode_cuts(model, cuts, search, max_duration=8, num_workers=2))
    assert len(alone) == 6 and [r[0] for r in pooled] == [r[0] for r in alone]
    assert [(h.text, h.words, len(h.nbest)) for _, _, h in pooled] == [(h.text, h.words, len(h.nbest))
                                                                      for _, _, h in alone]
    assert all(h.text for _, _, h in alone)  # the word score makes every utterance say something


def test_tune_then_decode_picks_up_the_tuned_values(tiny, an4_manifests, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    out, cuts = tiny
    model, tokenizer = load_model(out / "model.pt")
    points = search_points("grid", (0.0, 1.0), (0.0, 2.0), points=2)
    params = tune(model, tokenizer, cuts, out / "lm.arpa", out / "lexicon.txt", points, beam_size=8, num_workers=0)
    assert [(t["lm_weight"], t["word_score"]) for t in params.trials] == points
    chosen = [t for t in params.trials if (t["lm_weight"], t["word_score"]) == (params.lm_weight, params.word_score)]
    assert len(chosen) == 1 and params.dev_wer == chosen[0]["wer"]
    assert chosen[0]["smoothed_wer"] == min(t["smoothed_wer"] for t in params.trials)  # select="smooth", the default
    write_lm_params(params, out / "lm-params.yaml")
    assert read_lm_params(out / "lm-params.yaml") == params
    cuts.to_file(tmp_path / "cuts.jsonl.gz")
    args = ["decode", str(out / "model.pt"), str(tmp_path / "cuts.jsonl.gz"), "--method", "beam-lm",
            "--nbest", "2", "--num-workers", "0", "--out-dir", str(tmp_path)]
    assert main(args) == 0
    assert f"lm_weight={params.lm_weight}, word_score={params.word_score}, beam_size=8" in caplog.text
    rows = [json.loads(line) for line in (tmp_path / "hyp-test-beam-lm.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(len(r["nbest"]) <= 2 for r in rows)
    assert all(0 <= w["start"] < w["end"] for r in rows for w in r.get("words", []))


def test_beam_lm_options_from_the_params_file(tmp_path, caplog):
    params = LMParams(lm=str(tmp_path / "lm.arpa"), lexicon=str(tmp_path / "lex.txt"), lm_weight=1.5,
                      word_score=3.0, beam_size=50, beam_threshold=25.0, dev_wer=7.0)
    path = write_lm_params(params, tmp_path / "lm-params.yaml")
    options = resolve_search("beam-lm", {"lm": None, "lm_weight": 0.5, "nbest": None}, lm_params=path)
    assert options == SearchConfig(method="beam-lm", lm=params.lm, lexicon=params.lexicon, lm_weight=0.5,
                                   word_score=3.0, beam_size=50, beam_threshold=25.0)
    assert resolve_search("beam-lm", {"lm_weight": 0.5}, model_path=tmp_path / "model.pt") == options  # next to it
    resolve_search("beam-lm", {"lm": tmp_path / "other.arpa"}, lm_params=path)
    assert "was tuned for the LM" in caplog.text
    with pytest.raises(ValueError, match="method 'beam-lm' needs lm and/or lexicon"):
        resolve_search("beam-lm", {"lm": None}, model_path=tmp_path / "none" / "model.pt")
    with pytest.raises(FileNotFoundError, match="none.yaml: no such LM parameter file"):
        resolve_search("beam-lm", {"lm": "x.arpa"}, lm_params=tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("lm_weight: [1, 2\n")
    with pytest.raises(ValueError, match=r"bad.yaml:1: not an LM parameter file"):
        read_lm_params(tmp_path / "bad.yaml")


def test_search_points():
    grid = search_points("grid", (0.0, 3.0), (-2.0, 4.0), points=4)
    assert len(grid) == 16 and grid[0] == (0.0, -2.0) and grid[-1] == (3.0, 4.0)
    assert search_points("grid", (0.0, 3.0), (0.0, 0.0), points=4) == [(0.0, 0.0), (1.0, 0.0), (2.0, 0.0), (3.0, 0.0)]
    drawn = search_points("random", (0.0, 3.0), (-2.0, 4.0), trials=20, seed=1)
    assert len(drawn) == 20 and all(0 <= w <= 3 and -2 <= s <= 4 for w, s in drawn)
    assert drawn == search_points("random", (0.0, 3.0), (-2.0, 4.0), trials=20, seed=1)
    with pytest.raises(ValueError, match="expected 'grid' or 'random'"):
        search_points("bayes", (0.0, 1.0), (0.0, 1.0))


def _grid_errors(wers: list[list[int]], words: int = 100) -> tuple[list[tuple[float, float]], list[tuple[int, int]]]:
    """Grid points (LM weight rows x word score columns) with the given error counts out of ``words``."""
    points = search_points("grid", (0.0, len(wers) - 1.0), (0.0, len(wers[0]) - 1.0), points=len(wers))
    return points, [(e, words) for row in wers for e in row]


def test_smooth_selection_takes_the_middle_of_a_plateau_over_a_lone_dip():
    points, errors = _grid_errors([[30, 30, 30, 30, 30],
                                   [30, 12, 12, 12, 30],
                                   [30, 12, 12, 12, 30],
                                   [30, 12, 12, 12, 30],
                                   [11, 30, 30, 30, 30]])  # a one-point dip at the grid's corner
    lowest = best_params("lm.arpa", None, points, errors, select="lowest")
    assert (lowest.lm_weight, lowest.word_score) == (4.0, 0.0) and lowest.dev_wer == 11.0
    smooth = best_params("lm.arpa", None, points, errors)
    assert (smooth.lm_weight, smooth.word_score) == (2.0, 2.0) and smooth.dev_wer == 12.0
    assert [t["smoothed_wer"] for t in smooth.trials][12] == 12.0  # the 3 x 3 block around the centre
    with pytest.raises(ValueError, match="expected 'lowest' or 'smooth'"):
        best_params("lm.arpa", None, points, errors, select="centre")


def test_neighbourhoods_of_grids_lines_and_random_draws():
    points, errors = _grid_errors([[0, 9, 0], [0, 0, 0], [0, 0, 0]], words=10)
    pooled = neighbourhood_wers(points, errors)
    assert pooled[0] == pytest.approx(100 * 9 / 40) and pooled[4] == pytest.approx(10.0)  # corner: 4 points, centre: 9
    assert pooled[8] == 0.0
    line = search_points("grid", (0.0, 3.0), (0.0, 0.0), points=4)  # word score fixed: neighbours along the weights
    assert neighbourhood_wers(line, [(4, 10), (0, 10), (0, 10), (0, 10)]) == pytest.approx([20.0, 40 / 3, 0.0, 0.0])
    drawn = search_points("random", (0.0, 3.0), (-2.0, 4.0), trials=49, seed=0)
    spacing = [(max(p[a] for p in drawn) - min(p[a] for p in drawn)) / 6 for a in (0, 1)]  # span / (sqrt(49) - 1)
    sizes = [sum(abs(q[0] - p[0]) <= spacing[0] and abs(q[1] - p[1]) <= spacing[1] for q in drawn) for p in drawn]
    i = sizes.index(max(sizes))
    pooled = neighbourhood_wers(drawn, [(10 if j == i else 0, 10) for j in range(49)])
    assert 1 < sizes[i] < 49 and pooled[i] == pytest.approx(100 / sizes[i])
