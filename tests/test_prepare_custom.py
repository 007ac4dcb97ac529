"""asr prepare kaldi|table|jsonl|folder|lhotse on fixtures in each real layout, built from AN4 audio, and
one-line FILE:LINE errors for bad input with nothing written."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.cli import main
from asr.config import CustomPrepareConfig
from asr.data.corpora.an4 import parse_transcription
from asr.data.corpora.custom import normalize_text, prepare_folder, prepare_jsonl, prepare_kaldi
from asr.data.corpora.lhotse_recipes import prepare_lhotse
from asr.data.cuts import cut_audio, load_cuts

NUM_SPEAKERS, PER_SPEAKER = 5, 3


@pytest.fixture(scope="module")
def an4_utts(an4_dir) -> list[tuple[str, str, Path, str]]:
    """(speaker, utterance id, wav, words) of the first 3 utterances of 5 AN4 training speakers."""
    texts = parse_transcription(an4_dir / "etc" / "an4_train.transcription")
    per: dict[str, list] = {}
    for fileid in (an4_dir / "etc" / "an4_train.fileids").read_text().split():
        speaker, utt = fileid.split("/")[1:]
        if speaker in per or len(per) < NUM_SPEAKERS:
            chosen = per.setdefault(speaker, [])
            if len(chosen) < PER_SPEAKER:
                chosen.append((speaker, utt, an4_dir / "wav" / f"{fileid}.wav", texts[utt]))
    return [utt for chosen in per.values() for utt in chosen]


def _concat(utts, out: Path, gap: int = 1600) -> list[tuple[float, float]]:
    """Write the utterances' audio one after another (0.1 s of silence between) to ``out``; (start, end) of each."""
    pieces, spans, at = [], [], 0
    for *_, wav, _ in utts:
        samples, rate = sf.read(wav, dtype="int16")
        spans.append((at / rate, (at + len(samples)) / rate))
        pieces += [samples, np.zeros(gap, dtype=np.int16)]
        at += len(samples) + gap
    sf.write(out, np.concatenate(pieces), 16000)
    return spans


def _manifest(out: Path, corpus: str, split: str) -> list[dict]:
    with gzip.open(out / f"{corpus}_cuts_{split}.jsonl.gz", "rt") as f:
        return [json.loads(line) for line in f]


def _same_audio(cuts_path: Path, expected: dict[str, Path]) -> None:
    """Each cut's samples are those of the AN4 file it came from (segments, MP3 aside)."""
    for cut in load_cuts(cuts_path):
        ref, _ = sf.read(expected[cut.id], dtype="float32")
        got = cut_audio(cut, 16000).numpy()
        assert abs(len(got) - len(ref)) <= 1, cut.id
        n = min(len(got), len(ref))
        assert np.abs(got[:n] - ref[:n]).max() < 1e-4, cut.id


def test_kaldi_dir_with_segments_and_piped_wav_scp(an4_utts, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    by_speaker: dict[str, list] = {}
    for utt in an4_utts:
        by_speaker.setdefault(utt[0], []).append(utt)
    wav_scp, segments, text, utt2spk, expected = [], [], [], [], {}
    for i, (speaker, utts) in enumerate(sorted(by_speaker.items())):
        long = tmp_path / f"{speaker}.wav"
        spans = _concat(utts, long)
        rec = f"rec-{speaker}"
        wav_scp.append(f"{rec} cat {long} |" if i % 2 else f"{rec} {long}")  # every other one piped
        for (_, utt, wav, words), (start, end) in zip(utts, spans):
            segments.append(f"{utt} {rec} {start:.4f} {end:.4f}")
            text.append(f"{utt} {words}")
            utt2spk.append(f"{utt}\t{speaker}")
            expected[utt] = wav
    for name, lines in [("wav.scp", wav_scp), ("segments", segments), ("text", text), ("utt2spk", utt2spk)]:
        (data / name).write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert main(["prepare", "kaldi", str(data), str(out), "--split", "train"]) == 0
    rows = _manifest(out, "custom", "train")
    assert sorted(r["id"] for r in rows) == sorted(expected)
    assert {r["supervisions"][0]["speaker"] for r in rows} == set(by_speaker)
    assert sorted(p.name for p in (out / "audio").iterdir()) == sorted(
        f"rec-{s}.flac" for i, s in enumerate(sorted(by_speaker)) if i % 2)
    _same_audio(out / "custom_cuts_train.jsonl.gz", expected)
    assert (out / "text_train").read_text().splitlines()[0] in {f"{u} {w}" for _, u, _, w in an4_utts}


def _common_voice(an4_utts, root: Path) -> Path:
    """A Common Voice language tree: en/clips/*.mp3 and the TSVs, mixed-case sentences with punctuation."""
    lang = root / "en"
    (lang / "clips").mkdir(parents=True)
    columns = ["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accents", "variant",
               "locale", "segment"]
    rows = []
    for speaker, utt, wav, words in an4_utts:
        samples, rate = sf.read(wav, dtype="float32")
        name = f"common_voice_en_{utt}.mp3"
        sf.write(lang / "clips" / name, samples, rate, format="MP3")
        sentence = words.capitalize() + ("?" if len(words) % 2 else ".")
        rows.append([f"client-{speaker}", name, f'{sentence}', "2", "0", "", "", "", "", "en", ""])
    speakers = sorted({r[0] for r in rows})
    parts = {"validated": speakers, "train": speakers[:3], "dev": speakers[3:4], "test": speakers[4:]}
    for part, members in parts.items():
        lines = ["\t".join(columns)] + ["\t".join(r) for r in rows if r[0] in members]
        (lang / f"{part}.tsv").write_text("\n".join(lines) + "\n")
    return root


def test_common_voice_validated_tsv_as_a_table(an4_utts, tmp_path):
    cv = _common_voice(an4_utts, tmp_path / "cv")
    out = tmp_path / "out"
    assert main(["prepare", "table", str(cv / "en/validated.tsv"), str(out), "--audio", "path", "--text", "sentence",
                 "--speaker", "client_id", "--root", str(cv / "en/clips"), "--case", "upper", "--remove-punct",
                 "--corpus", "cv", "--dev-fraction", "0.2", "--test-fraction", "0.2"]) == 0
    splits = {s: _manifest(out, "cv", s) for s in ("train", "dev", "test")}
    assert [len(rows) for rows in splits.values()] == [9, 3, 3]
    speakers = {s: {r["supervisions"][0]["speaker"] for r in rows} for s, rows in splits.items()}
    assert len(speakers["dev"]) == len(speakers["test"]) == 1
    assert not speakers["train"] & (speakers["dev"] | speakers["test"])
    texts = {r["id"]: r["supervisions"][0]["text"] for rows in splits.values() for r in rows}
    assert texts == {f"common_voice_en_{u}": w for _, u, _, w in an4_utts}  # upper case, no punctuation
    chars = (out / "cv_chars.txt").read_text()
    assert "?" not in chars and "\tU+0020 SPACE" in chars


def test_common_voice_through_lhotse(an4_utts, tmp_path):
    cv = _common_voice(an4_utts, tmp_path / "cv")
    out = tmp_path / "out"
    assert main(["prepare", "lhotse", "commonvoice", str(cv), str(out), "--opt", "languages=en",
                 "--num-jobs", "1", "--corpus", "commonvoice"]) == 0
    rows = {s: _manifest(out, "commonvoice", s) for s in ("train", "dev", "test")}
    assert [len(r) for r in rows.values()] == [9, 3, 3]
    words = {f"common_voice_en_{u}": w for _, u, _, w in an4_utts}
    assert {r["id"]: r["supervisions"][0]["text"] for part in rows.values() for r in part} == words


def test_tedlium_tree_through_lhotse(an4_utts, tmp_path):
    """legacy/{train,dev,test}/{sph,stm}: one talk per speaker, lower case with <unk> and noise tags."""
    root = tmp_path / "TEDLIUM_release-3"
    by_speaker: dict[str, list] = {}
    for utt in an4_utts:
        by_speaker.setdefault(utt[0], []).append(utt)
    talks = sorted(by_speaker)
    parts = {"train": talks[:3], "dev": talks[3:4], "test": talks[4:]}
    for part, members in parts.items():
        for sub in ("sph", "stm"):
            (root / "legacy" / part / sub).mkdir(parents=True)
        for talk in members:
            wav = tmp_path / f"{talk}.wav"
            spans = _concat(by_speaker[talk], wav)
            sf.write(root / "legacy" / part / "sph" / f"{talk}.sph", sf.read(wav, dtype="int16")[0], 16000,
                     format="NIST", subtype="PCM_16")
            lines = [f"{talk} 1 {talk} {s:.2f} {e:.2f} <o,f0,male> {w.lower()} <unk> {{NOISE}}"
                     for (*_, w), (s, e) in zip(by_speaker[talk], spans)]
            lines.append(f"{talk} 1 {talk} 0.00 0.10 <o,f0,male> ignore_time_segment_in_scoring")
            (root / "legacy" / part / "stm" / f"{talk}.stm").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    prepare_lhotse("tedlium", root, out, corpus="tedlium", num_jobs=1)
    rows = {s: _manifest(out, "tedlium", s) for s in parts}
    assert [len(r) for r in rows.values()] == [9, 3, 3]
    assert sorted(r["supervisions"][0]["text"] for part in rows.values() for r in part) == sorted(
        w for *_, w in an4_utts)


def test_ljspeech_metadata_without_header(an4_utts, tmp_path):
    root = tmp_path / "LJSpeech-1.1"
    (root / "wavs").mkdir(parents=True)
    lines = []
    for _, utt, wav, words in an4_utts:
        (root / "wavs" / f"{utt}.wav").symlink_to(wav)
        lines.append(f'{utt}|"{words.lower()}," he said|{words.lower()} he said')
    (root / "metadata.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert main(["prepare", "table", str(root / "metadata.csv"), str(out), "--delimiter", "|", "--no-header",
                 "--audio", "1", "--text", "3", "--root", str(root / "wavs"), "--audio-suffix", ".wav",
                 "--corpus", "lj", "--test-fraction", "0.2", "--chars", "abcdefghijklmnopqrstuvwxyz"]) == 0
    rows = {s: _manifest(out, "lj", s) for s in ("train", "dev", "test")}
    assert [len(r) for r in rows.values()] == [10, 2, 3]  # utterances held out (no speakers): 15 x 0.1, 15 x 0.2
    assert all(r["supervisions"][0]["text"].endswith(" he said") for part in rows.values() for r in part)


def test_nemo_manifest_with_offsets(an4_utts, tmp_path):
    long = tmp_path / "audio" / "session.wav"
    long.parent.mkdir()
    spans = _concat(an4_utts, long)
    lines = [json.dumps({"audio_filepath": "audio/session.wav", "offset": s, "duration": e - s, "text": w,
                         "speaker": spk}) for (spk, _, _, w), (s, e) in zip(an4_utts, spans)]
    (tmp_path / "train_manifest.json").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert main(["prepare", "jsonl", str(tmp_path / "train_manifest.json"), str(out), "--split", "train"]) == 0
    rows = _manifest(out, "custom", "train")
    assert len(rows) == len(an4_utts)
    expected = {f"audio-session-{round(s * 100):07d}": wav for (_, _, wav, _), (s, _) in zip(an4_utts, spans)}
    _same_audio(out / "custom_cuts_train.jsonl.gz", expected)


def test_mfa_folder_with_speaker_directories(an4_utts, tmp_path):
    corpus = tmp_path / "mfa"
    for speaker, utt, wav, words in an4_utts:
        (corpus / speaker).mkdir(parents=True, exist_ok=True)
        samples, rate = sf.read(wav, dtype="int16")
        sf.write(corpus / speaker / f"{utt}.flac", np.stack([samples, samples], 1), rate)  # stereo FLAC
        (corpus / speaker / f"{utt}.lab").write_text(words.lower() + "\n")
    out = tmp_path / "out"
    splits = prepare_folder(corpus, out, CustomPrepareConfig(dev_fraction=0.2, test_fraction=0, case="upper"))
    assert sorted(splits) == ["dev", "train"] and len(splits["dev"]) == 3
    cut = splits["train"][0]
    assert cut.recording.num_channels == 2 and cut.supervisions[0].speaker == cut.id.split("-")[0]
    assert {c.supervisions[0].text for s in splits.values() for c in s} == {w for *_, w in an4_utts}


def test_normalize_text_keeps_word_internal_apostrophes_and_hyphens():
    assert normalize_text("  Don't stop -- the x-ray, 'now'!", "upper", True) == "DON'T STOP THE X-RAY NOW"
    assert normalize_text("A  b", "lower", False) == "a b"


# ---- bad input: one line naming FILE:LINE, nothing written ------------------------------------------


def _table(tmp_path, an4_utts, rows: list[str], header: str | None = "path\tsentence\tclient_id",
           encoding: str = "utf-8") -> Path:
    (tmp_path / "clips").mkdir(exist_ok=True)
    for _, utt, wav, _ in an4_utts[:3]:
        if not (tmp_path / "clips" / f"{utt}.wav").exists():
            (tmp_path / "clips" / f"{utt}.wav").symlink_to(wav)
    table = tmp_path / "t.tsv"
    table.write_bytes("\n".join(([header] if header else []) + rows).encode(encoding) + b"\n")
    return table


BAD_TABLES = {
    "missing column": (["an251-fash-b.wav\tYES\tfash"], "path\ttext\tclient_id", "t.tsv:1: no column 'sentence'"),
    "header-less file": (["an251-fash-b.wav\tYES\tfash"], None, "t.tsv:1: no column 'path'"),
    "path outside the root": (["an251-fash-b.wav\tYES\tfash", "../../etc/passwd\tNO\tfash"], "path\tsentence\t"
                              "client_id", "t.tsv:3: audio path '../../etc/passwd' leads outside the root"),
    "missing audio file": (["an251-fash-b.wav\tYES\tfash", "gone.wav\tYES\tfash"], "path\tsentence\tclient_id",
                           "t.tsv:3: no audio file"),
    "empty transcript": (["an251-fash-b.wav\tYES\tfash", "an253-fash-b.wav\t \tfash"], "path\tsentence\tclient_id",
                         "t.tsv:3: empty transcript for 'an253-fash-b'"),
    "too few fields": (["an251-fash-b.wav\tYES"], "path\tsentence\tclient_id", "t.tsv:2: 2 fields, column 3 needed"),
    "undecodable text": (["an251-fash-b.wav\tYES\tfash", "an253-fash-b.wav\tNO\tfash", "an254-fash-b.wav\tGRÜN\tfash"],
                         "path\tsentence\tclient_id", "t.tsv:4: not UTF-8 text (byte 0xdc)"),
}


@pytest.mark.parametrize("case", BAD_TABLES)
def test_bad_table_is_one_line_naming_file_and_line(case, an4_utts, tmp_path, capsys):
    rows, header, message = BAD_TABLES[case]
    table = _table(tmp_path, an4_utts, rows, header, "latin-1" if case == "undecodable text" else "utf-8")
    out = tmp_path / "out"
    assert main(["prepare", "table", str(table), str(out), "--audio", "path", "--text", "sentence", "--speaker",
                 "client_id", "--root", str(tmp_path / "clips"), "--split", "train"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()


def test_bad_kaldi_and_jsonl_lines_name_file_and_line(an4_utts, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "wav.scp").write_text(f"a {an4_utts[0][2]}\nb false |\n")
    (data / "text").write_text("a YES\nb NO\n")
    with pytest.raises(ValueError, match=r"wav.scp:2: command failed with status 1"):
        prepare_kaldi(data, tmp_path / "out")
    (data / "text").write_text("a YES\nc NO\n")
    with pytest.raises(ValueError, match=r"text:2: utterance 'c' is in neither segments nor wav.scp"):
        prepare_kaldi(data, tmp_path / "out")
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"audio_filepath": str(an4_utts[0][2]), "text": "YES"}) + "\n{\"text\": 1}\n")
    with pytest.raises(ValueError, match=r"m.json:2: no 'audio_filepath' field"):
        prepare_jsonl(manifest, tmp_path / "out")
    assert not (tmp_path / "out").exists()
