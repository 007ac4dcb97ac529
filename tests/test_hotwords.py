"""Hotwords: the file format and its errors, boosting words the LM knows, adding words nobody knows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from asr.cli import main
from asr.config import HotwordConfig
from asr.data.cuts import load_cuts
from asr.data.tokenizer import CharTokenizer
from asr.decoding.hotwords import Hotword, read_hotwords
from asr.decoding.lexicon import build_lexicon, write_lexicon
from asr.decoding.lm import build_lm
from asr.decoding.search import BeamSearch, decode_cuts
from asr.model.checkpoint import load_model
from helpers import random_letter_model, word_lm_and_lexicon

TOKENIZER = CharTokenizer.train(["THE CAT CAR AT"])  # <blk> | A C E H R T
# "THE CAT", the last letter a little more like R than T
CAT_OR_CAR = ["T", "-", "H", "-", "E", "|", "-", "C", "-", "A", "-", {"R": 0.55, "T": 0.4}, "-", "-"]
# "THE TEA": TEA is in neither the lexicon nor the LM
THE_TEA = ["T", "-", "H", "-", "E", "|", "-", "T", "-", "E", "-", "A", "-", "-"]


def _emissions(frames) -> torch.Tensor:
    """(1, T, V) log-probs: each frame puts 0.95 (or the given shares) on its units, the rest spread evenly."""
    vocab = len(TOKENIZER.units)
    rows = []
    for frame in frames:
        shares = frame if isinstance(frame, dict) else {frame: 0.95}
        row = torch.full((vocab,), (1 - sum(shares.values())) / (vocab - len(shares)))
        for unit, p in shares.items():
            row[TOKENIZER.units.index("<blk>" if unit == "-" else unit)] = p
        rows.append(row)
    return torch.stack(rows).log()[None]


def _text(search: BeamSearch, frames) -> str:
    emissions = _emissions(frames)
    return search(emissions, torch.tensor([emissions.size(1)]))[0].text


@pytest.fixture(scope="module")
def lm_files(tmp_path_factory) -> tuple[Path, Path]:
    """A word 2-gram where CAT is far likelier than CAR, and its lexicon."""
    out = tmp_path_factory.mktemp("lm")
    (out / "text.txt").write_text("THE CAT\nTHE CAT\nTHE CAT\nA CAR\n")
    build_lm(out / "text.txt", out / "lm.arpa", order=2)
    lexicon, _ = build_lexicon(["A", "CAR", "CAT", "THE"], TOKENIZER)
    return out / "lm.arpa", write_lexicon(lexicon, out / "lexicon.txt")


def test_read_hotwords(tmp_path):
    path = tmp_path / "hot.txt"
    path.write_text("# names\nTEA 7.5\n\nCAT   # default boost\nCAR -1\n")
    assert read_hotwords(path, TOKENIZER) == [
        Hotword("TEA", 7.5, ("T", "E", "A", "|")),
        Hotword("CAT", HotwordConfig().boost, ("C", "A", "T", "|")),
        Hotword("CAR", -1.0, ("C", "A", "R", "|")),
    ]
    assert read_hotwords(path, TOKENIZER, default_boost=2.0)[1].boost == 2.0


@pytest.mark.parametrize("lines, lineno, message", [
    ("CAT 2\nSAT 3\n", 2, "hotword 'SAT' cannot be spelled with the model's units (character 'S'"),
    ("CAT 2\nCAT three\n", 2, "boost of 'CAT' is not a number: 'three'"),
    ("CAT 2 3\n", 1, "expected 'WORD [BOOST]'"),
    ("CAT 2\n\nCAT 1\n", 3, "hotword 'CAT' is listed twice"),
    ("CAT nan\n", 1, "boost must be a finite number"),
    ("# nothing\n\n", 1, "no hotwords in the file"),
])
def test_bad_hotword_file_names_file_and_line(tmp_path, lines, lineno, message):
    path = tmp_path / "hot.txt"
    path.write_text(lines)
    with pytest.raises(ValueError) as err:
        read_hotwords(path, TOKENIZER)
    assert str(err.value).startswith(f"{path}:{lineno}: ")
    assert message in str(err.value)


def test_boost_overrules_the_lm(lm_files):
    lm, lexicon = lm_files
    options = dict(lexicon=lexicon, lm=lm, lm_weight=2.0)
    assert _text(BeamSearch(TOKENIZER, 8, **options), CAT_OR_CAR) == "THE CAT"
    assert _text(BeamSearch(TOKENIZER, 8, hotwords={"CAR": 4.0}, **options), CAT_OR_CAR) == "THE CAR"
    assert _text(BeamSearch(TOKENIZER, 8, hotwords={"CAT": -4.0}, **options), CAT_OR_CAR) == "THE CAR"
    # the boost is in score units whatever the LM weight: reweighting keeps it
    search = BeamSearch(TOKENIZER, 8, hotwords={"CAR": 4.0}, **options)
    assert _text(search.reweighted(0.5, 0.0), CAT_OR_CAR) == "THE CAR"


@pytest.mark.parametrize("with_lm", [True, False], ids=["kenlm", "no-lm"])
def test_word_outside_lexicon_and_lm_is_recognised(lm_files, tmp_path, with_lm):
    lm, lexicon = lm_files
    options = dict(lexicon=lexicon, lm=lm if with_lm else None, lm_weight=1.0)
    assert "TEA" not in _text(BeamSearch(TOKENIZER, 16, **options), THE_TEA).split()
    # the boost decides: a penalty keeps it out, a boost lets it in
    (tmp_path / "hot.txt").write_text("TEA -30\n")
    weak = _text(BeamSearch(TOKENIZER, 16, hotwords=tmp_path / "hot.txt", **options), THE_TEA)
    (tmp_path / "hot.txt").write_text("TEA 8\n")
    strong = _text(BeamSearch(TOKENIZER, 16, hotwords=tmp_path / "hot.txt", **options), THE_TEA)
    assert strong == "THE TEA"
    assert "TEA" not in weak.split()


def test_hotwords_need_a_lexicon_and_an_lm_weight(lm_files):
    lm, lexicon = lm_files
    with pytest.raises(ValueError, match="hotwords: need a lexicon"):
        BeamSearch(TOKENIZER, 8, hotwords={"CAT": 1.0})
    with pytest.raises(ValueError, match="lm_weight > 0"):
        BeamSearch(TOKENIZER, 8, lexicon=lexicon, lm=lm, lm_weight=0.0, hotwords={"CAT": 1.0})
    with pytest.raises(ValueError, match="hotword 'SAT' cannot be spelled"):
        BeamSearch(TOKENIZER, 8, lexicon=lexicon, lm=lm, hotwords={"SAT": 1.0})


# ------------------------------------------------------------ real audio, tiny random model, CLI


@pytest.fixture(scope="module")
def tiny(an4_manifests, tmp_path_factory):
    """A random 1x16 letter model, 4 AN4 test cuts, a word 3-gram of the training text and its lexicon."""
    out = tmp_path_factory.mktemp("tiny")
    word_lm_and_lexicon(random_letter_model(out), an4_manifests / "text_train", out)
    load_cuts(an4_manifests / "an4_cuts_test.jsonl.gz").subset(first=4).to_file(out / "cuts.jsonl.gz")
    return out


def test_workers_rebuild_the_same_hotword_search(tiny):
    model, tokenizer = load_model(tiny / "model.pt")
    cuts = load_cuts(tiny / "cuts.jsonl.gz")
    # a huge boost on a word no LM knows: a random model then says it everywhere
    options = dict(lexicon=tiny / "lexicon.txt", lm=tiny / "lm.arpa", lm_weight=1.0, hotwords={"NOVEMBER": 60.0})
    search = BeamSearch(tokenizer, 8, **options)
    alone = [h.text for _, _, h in decode_cuts(model, cuts, search, max_duration=8, num_workers=0)]
    pooled = [h.text for _, _, h in decode_cuts(model, cuts, search, max_duration=8, num_workers=2)]
    assert pooled == alone
    assert all("NOVEMBER" in text.split() for text in alone)


def test_cli_decode_with_hotwords(tiny, tmp_path):
    (tmp_path / "hot.txt").write_text("NOVEMBER 60\n")
    args = ["decode", str(tiny / "model.pt"), str(tiny / "cuts.jsonl.gz"), "--method", "beam-lm", "--lm",
            str(tiny / "lm.arpa"), "--lexicon", str(tiny / "lexicon.txt"), "--lm-weight", "1", "--beam", "8",
            "--num-workers", "0", "--out-dir", str(tmp_path)]
    assert main(args + ["--hotwords", str(tmp_path / "hot.txt")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "hyp-test-beam-lm.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all("NOVEMBER" in r["text"].split() for r in rows)


@pytest.mark.parametrize("command", ["decode", "transcribe"])
def test_cli_unspellable_hotword_is_one_error_line(tiny, tmp_path, capsys, command):
    (tmp_path / "hot.txt").write_text("NOVEMBER 3\nCAFÉ 2\n")
    lm_args = ["--method", "beam-lm", "--lm", str(tiny / "lm.arpa"), "--lexicon", str(tiny / "lexicon.txt"),
               "--hotwords", str(tmp_path / "hot.txt")]
    if command == "decode":
        args = ["decode", str(tiny / "model.pt"), str(tiny / "cuts.jsonl.gz"), "--out-dir", str(tmp_path)]
    else:
        wav = tmp_path / "a.wav"
        import soundfile

        soundfile.write(wav, torch.zeros(16000).numpy(), 16000)
        args = ["transcribe", str(tiny / "model.pt"), str(wav)]
    assert main(args + lm_args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"asr {command}: error: {tmp_path / 'hot.txt'}:2: hotword 'CAFÉ' cannot be spelled with the "
                   "model's units (character 'É' is not in the tokenizer's units)"]


def test_transcribe_rejects_hotwords_without_beam_lm(tiny, tmp_path, capsys):
    (tmp_path / "hot.txt").write_text("NOVEMBER\n")
    assert main(["transcribe", str(tiny / "model.pt"), "x.wav", "--hotwords", str(tmp_path / "hot.txt")]) == 1
    assert "hotwords: only for method 'beam-lm', not 'greedy'" in capsys.readouterr().err


def test_warns_when_the_lm_has_no_unk(lm_files, tmp_path, caplog):
    _, lexicon = lm_files
    arpa = tmp_path / "no-unk.arpa"  # KenLM scores unknown words log10 p = -100 without a <unk> unigram
    arpa.write_text("\\data\\\nngram 1=4\nngram 2=1\n\n\\1-grams:\n-99\t<s>\t0\n-0.5\t</s>\n-0.5\tTHE\t0\n"
                    "-0.5\tCAT\n\n\\2-grams:\n-0.1\tTHE CAT\n\n\\end\\\n")
    BeamSearch(TOKENIZER, 8, lexicon=lexicon, lm=arpa, hotwords={"TEA": 5.0, "CAT": 1.0})
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "hotword(s) TEA log10 p < -20" in warnings[0]
