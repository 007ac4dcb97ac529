"""Kneser-Ney estimation and ARPA files (asr.decoding.lm)."""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

import pytest

from asr.decoding import lm as lm_module
from asr.cli import main
from asr.decoding.lm import BOS, EOS, UNK, arpa_words, build_lm, read_arpa
from asr.data.tokenizer import CharTokenizer

TOY = ["A B C", "A B", "B C A", "C A B C", "A", "B B C", "A C"]


@pytest.fixture(scope="module")
def an4_text(an4_dir, tmp_path_factory) -> tuple[Path, Path]:
    """AN4 train and test transcripts as plain text, one sentence per line."""
    out = tmp_path_factory.mktemp("an4_text")
    train = re.findall(r"^<s> (.*) </s> \(.*\)$", (an4_dir / "etc/an4_train.transcription").read_text(), re.M)
    test = re.findall(r"^(.*) \(.*\)$", (an4_dir / "etc/an4_test.transcription").read_text(), re.M)
    assert len(train) == 948 and len(test) == 130
    (out / "train.txt").write_text("\n".join(train) + "\n")
    (out / "test.txt").write_text("\n".join(test) + "\n")
    return out / "train.txt", out / "test.txt"


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def _context_sums(model) -> list[float]:
    """sum_w p(w | h) for the empty context and every n-gram of order < N used as context."""
    vocab = [w for w in model.vocab if w != BOS]
    contexts = [()] + [h for table in model.orders[:-1] for h in table]
    return [sum(10.0 ** model.log10_prob(h, w) for w in vocab) for h in contexts]


def _reference_kn(sentences: list[str], order: int):
    """Interpolated modified Kneser-Ney written out with dicts, straight from Chen & Goodman."""
    raw: Counter = Counter()
    for s in sentences:
        tokens = [BOS, *s.split(), EOS]
        for n in range(1, order + 1):
            for i in range(len(tokens) - n + 1):
                raw[tuple(tokens[i : i + n])] += 1
    left: Counter = Counter(g[1:] for g in raw if len(g) > 1)
    count = {g: raw[g] if len(g) == order or g[0] == BOS else left[g] for g in raw if g != (BOS,)}
    vocab = sorted({g[0] for g in count if len(g) == 1} | {UNK})
    discounts = {}
    for n in range(1, order + 1):
        t = Counter(c for g, c in count.items() if len(g) == n)
        y = t[1] / (t[1] + 2 * t[2])
        discounts[n] = [0.0] + [k - (k + 1) * y * t[k + 1] / t[k] for k in (1, 2, 3)]
    extensions: dict = {}
    for g in count:
        extensions.setdefault(g[:-1], []).append(g[-1])

    def disc(g) -> float:
        return discounts[len(g)][min(count.get(g, 0), 3)]

    def gamma(h) -> float:
        total = sum(count[h + (x,)] for x in extensions[h])
        return sum(disc(h + (x,)) for x in extensions[h]) / total

    def prob(h: tuple, w: str) -> float:
        lower = 1.0 / len(vocab) if not h else prob(h[1:], w)
        if h not in extensions:
            return lower
        total = sum(count[h + (x,)] for x in extensions[h])
        return (count.get(h + (w,), 0) - disc(h + (w,))) / total + gamma(h) * lower

    return prob, gamma


def test_probabilities_match_a_direct_implementation(an4_text, tmp_path):
    sentences = an4_text[0].read_text().splitlines()
    build_lm(an4_text[0], tmp_path / "lm.arpa", order=3)
    model = read_arpa(tmp_path / "lm.arpa")
    prob, gamma = _reference_kn(sentences, 3)
    checked = 0
    for table in model.orders:
        for gram, (logp, backoff) in table.items():
            if gram == (BOS,):
                assert logp == -99.0
                continue
            assert logp == pytest.approx(math.log10(prob(gram[:-1], gram[-1])), abs=2e-6), gram
            if backoff:
                assert backoff == pytest.approx(math.log10(gamma(gram)), abs=2e-6), gram
            checked += 1
    assert checked == 101 + 1256 + 3121  # every n-gram but <s>


@pytest.mark.parametrize("order,prune", [(3, False), (3, True), (4, True)])
def test_every_context_sums_to_one(an4_text, tmp_path, order, prune):
    sizes = build_lm(an4_text[0], tmp_path / "lm.arpa", order=order, prune_singletons=prune)
    model = read_arpa(tmp_path / "lm.arpa")
    assert [len(t) for t in model.orders] == list(sizes.values())
    sums = _context_sums(model)
    assert len(sums) == 1 + sum(list(sizes.values())[:-1])
    assert max(abs(s - 1.0) for s in sums) < 1e-4


def test_an4_trigram_sizes_and_pruning(an4_text, tmp_path):
    assert build_lm(an4_text[0], tmp_path / "full.arpa", 3) == {1: 102, 2: 1256, 3: 3121}  # 99 words + 3 marks
    assert build_lm(an4_text[0], tmp_path / "pruned.arpa", 3, prune_singletons=True) == {1: 102, 2: 747, 3: 786}


def test_kenlm_loads_and_agrees_with_our_scores(an4_text, tmp_path):
    kenlm = pytest.importorskip("kenlm")
    build_lm(an4_text[0], tmp_path / "lm.arpa", order=3, prune_singletons=True)
    ours = read_arpa(tmp_path / "lm.arpa")
    theirs = kenlm.Model(str(tmp_path / "lm.arpa"))
    assert theirs.order == 3
    held_out = an4_text[1].read_text().splitlines()  # holds NOVEMBER and THIRTEEN, unseen in training
    assert any("NOVEMBER" in s for s in held_out)
    for sentence in held_out:
        assert theirs.score(sentence) == pytest.approx(ours.score(sentence), abs=1e-4)
    words = sum(len(s.split()) + 1 for s in held_out)
    kenlm_ppl = 10.0 ** (-sum(theirs.score(s) for s in held_out) / words)
    assert kenlm_ppl == pytest.approx(ours.perplexity(held_out), rel=1e-5)


@pytest.mark.parametrize("order", [lm_module.KENLM_MAX_ORDER, lm_module.KENLM_MAX_ORDER + 1])
def test_orders_past_kenlm_max_order_are_written_with_a_warning(an4_text, tmp_path, caplog, order):
    """The installed kenlm loads up to KENLM_MAX_ORDER and refuses the next order: the builder warns about it."""
    kenlm = pytest.importorskip("kenlm")
    build_lm(an4_text[0], tmp_path / "lm.arpa", order=order)
    warned = "loads at most order" in caplog.text
    if order <= lm_module.KENLM_MAX_ORDER:
        assert kenlm.Model(str(tmp_path / "lm.arpa")).order == order and not warned
    else:
        with pytest.raises(OSError):
            kenlm.Model(str(tmp_path / "lm.arpa"))
        assert warned


def test_kneser_ney_beats_add_one_on_held_out_text(an4_text, tmp_path):
    train, test = an4_text[0].read_text().splitlines(), an4_text[1].read_text().splitlines()
    build_lm(an4_text[0], tmp_path / "lm.arpa", order=3)
    kn = read_arpa(tmp_path / "lm.arpa").perplexity(test)
    vocab = {w for s in train for w in s.split()} | {EOS, UNK}
    tri, bi = Counter(), Counter()
    for s in train:
        tokens = [BOS, BOS, *s.split(), EOS]
        for i in range(2, len(tokens)):
            tri[tuple(tokens[i - 2 : i + 1])] += 1
            bi[tuple(tokens[i - 2 : i])] += 1
    log10_total, words = 0.0, 0
    for s in test:
        tokens = [BOS, BOS, *(w if w in vocab else UNK for w in s.split()), EOS]
        for i in range(2, len(tokens)):
            p = (tri[tuple(tokens[i - 2 : i + 1])] + 1) / (bi[tuple(tokens[i - 2 : i])] + len(vocab))
            log10_total += math.log10(p)
            words += 1
    add_one = 10.0 ** (-log10_total / words)
    assert kn < 20 < add_one  # 16.8 against 31.6


def test_chunked_counting_gives_the_same_file(an4_text, tmp_path, monkeypatch):
    build_lm(an4_text[0], tmp_path / "one.arpa", order=4, prune_singletons=True)
    monkeypatch.setattr(lm_module, "_CHUNK_LINES", 7)  # 136 runs to merge
    monkeypatch.setattr(lm_module, "_BLOCK", 50)  # contexts estimated and written in small blocks
    build_lm(an4_text[0], tmp_path / "many.arpa", order=4, prune_singletons=True)
    assert (tmp_path / "many.arpa").read_text() == (tmp_path / "one.arpa").read_text()


def test_kaldi_text_and_gzip(tmp_path):
    import gzip

    _write(tmp_path / "plain.txt", TOY)
    _write(tmp_path / "kaldi", [f"utt{i} {s}" for i, s in enumerate(TOY)] + ["utt-empty"])
    with gzip.open(tmp_path / "plain.txt.gz", "wt") as f:
        f.write("\n".join(TOY))
    build_lm(tmp_path / "plain.txt", tmp_path / "a.arpa", order=3)
    build_lm(tmp_path / "kaldi", tmp_path / "b.arpa", order=3, kaldi=True)
    build_lm(tmp_path / "plain.txt.gz", tmp_path / "c.arpa", order=3)
    assert (tmp_path / "a.arpa").read_text() == (tmp_path / "b.arpa").read_text() == (tmp_path / "c.arpa").read_text()
    assert arpa_words(tmp_path / "a.arpa") == ["A", "B", "C"]


def test_unit_lm_for_lexicon_free_search(tmp_path):
    tokenizer = CharTokenizer.train(TOY)
    build_lm(_write(tmp_path / "t.txt", TOY), tmp_path / "units.arpa", order=3, tokenizer=tokenizer)
    model = read_arpa(tmp_path / "units.arpa")
    assert set(model.vocab) == {"A", "B", "C", "|", BOS, EOS, UNK}
    assert ("A", "|", "B") in model.orders[2]
    assert max(abs(s - 1.0) for s in _context_sums(model)) < 1e-4


def test_small_text_falls_back_to_fixed_discounts(tmp_path, caplog):
    build_lm(_write(tmp_path / "t.txt", ["A B"]), tmp_path / "lm.arpa", order=2)
    assert "no valid Kneser-Ney discounts" in caplog.text
    assert max(abs(s - 1.0) for s in _context_sums(read_arpa(tmp_path / "lm.arpa"))) < 1e-4


@pytest.mark.parametrize("lines,line", [([], 1), (["", "  ", ""], 3)])
def test_empty_text_is_an_error_naming_file_and_line(tmp_path, lines, line):
    path = _write(tmp_path / "empty.txt", lines)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:{line}: no sentences"):
        build_lm(path, tmp_path / "lm.arpa")
    assert not (tmp_path / "lm.arpa").exists()


def test_reserved_token_is_an_error_naming_the_line(tmp_path):
    path = _write(tmp_path / "t.txt", ["A B", "", "A </s> B"])
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:3: reserved token '</s>'"):
        build_lm(path, tmp_path / "lm.arpa")


def test_order_beyond_the_key_width_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at most 63 are supported"):
        build_lm(_write(tmp_path / "t.txt", TOY), tmp_path / "lm.arpa", order=40)


_GOOD = ["\\data\\", "ngram 1=3", "ngram 2=1", "", "\\1-grams:", "-1.0\t<s>\t-0.3", "-0.5\t</s>",
         "-0.5\tA\t-0.2", "", "\\2-grams:", "-0.2\t<s> A", "", "\\end\\"]


@pytest.mark.parametrize("edit,line,message", [
    ({7: "-0.5\tA\tx"}, 8, "not a number"),
    ({7: "-0.5\tA B C"}, 8, "expected 'LOGPROB' \\+ 1 word"),
    ({7: "0.5\tA"}, 8, "must be <= 0"),
    ({1: "ngram 1=4"}, 5, "header says ngram 1=4, section has 3"),
    ({1: "ngrams 1=3"}, 2, "expected 'ngram N=COUNT'"),
    ({0: "data"}, 1, "expected '\\\\data\\\\'"),
    ({9: "\\3-grams:"}, 10, "expected '\\\\\\\\2-grams:'"),
    ({12: ""}, 13, "file ends without"),
])
def test_malformed_arpa_names_file_and_line(tmp_path, edit, line, message):
    lines = [edit.get(i, text) for i, text in enumerate(_GOOD)]
    path = _write(tmp_path / "bad.arpa", lines)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:{line}: .*{message}"):
        read_arpa(path)


def test_good_arpa_reads(tmp_path):
    model = read_arpa(_write(tmp_path / "good.arpa", _GOOD))
    assert model.log10_prob((BOS,), "A") == -0.2
    assert model.log10_prob(("A",), EOS) == pytest.approx(-0.2 + -0.5)
    assert model.log10_prob((), "ZZZ") == -100.0  # no <unk> in the file: KenLM's convention


def test_cli_lm_build_and_its_errors(tmp_path, capsys):
    text = _write(tmp_path / "t.txt", TOY)
    assert main(["lm", "build", "--order", "3", "--text", str(text), "--out", str(tmp_path / "lm.arpa")]) == 0
    assert read_arpa(tmp_path / "lm.arpa").order == 3
    empty = _write(tmp_path / "empty.txt", [])
    assert main(["lm", "build", "--text", str(empty), "--out", str(tmp_path / "x.arpa")]) == 1
    assert f"asr lm: error: {empty}:1: no sentences" in capsys.readouterr().err


def test_kenlm_loading_is_quiet(tmp_path, capfd, caplog):
    """KenLM's C++ hint and asterisk progress bar never reach the user; one log line instead."""
    import logging

    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary

    from asr.decoding.search import BeamSearch

    tokenizer = CharTokenizer.train(["A B C"])
    build_lm(_write(tmp_path / "t.txt", TOY), tmp_path / "lm.arpa", order=3, tokenizer=tokenizer)
    capfd.readouterr()
    KenLM(str(tmp_path / "lm.arpa"), Dictionary(tokenizer.units))  # unguarded: KenLM talks
    noisy = "".join(capfd.readouterr())
    assert "Loading the LM will be faster if you build a binary file." in noisy and "****" in noisy
    caplog.set_level(logging.INFO, logger="asr")
    print("before", flush=True)
    BeamSearch(tokenizer, 4, lm=tmp_path / "lm.arpa")
    print("after", flush=True)
    out, err = capfd.readouterr()
    assert out == "before\nafter\n"  # our own output still flows, around the load
    assert "Loading the LM" not in err and "*" not in err and "Reading" not in err
    assert [r.getMessage() for r in caplog.records if "language model" in r.getMessage()] == [
        f"loaded the language model {tmp_path / 'lm.arpa'}"]
