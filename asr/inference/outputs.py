"""What recognition produces for one file (``Transcript``), and its file formats: text, JSON, SRT, WebVTT.

Times are seconds from the start of the file. A word (``asr.decoding.words.Word``) has a
confidence ``conf``: the mean CTC posterior of its units over the frames aligned to them (0 to 1),
mapped by a calibrator when the model has one. Subtitle cues hold at most two lines of
``CUE_LINE_CHARS`` characters and ``CUE_MAX_SECONDS`` seconds; a pause of ``CUE_MAX_PAUSE``
seconds or a segment boundary starts a new cue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ..decoding.words import Word

__all__ = ["Segment", "Transcript", "FORMATS", "to_text", "to_json", "from_json", "read_json", "to_srt", "to_vtt",
           "cues", "output_path", "write_outputs"]

CUE_LINE_CHARS = 42  # the usual broadcast subtitle line (BBC, Netflix: 42)
CUE_MAX_SECONDS = 7.0  # longest time one cue stays on screen
CUE_MAX_PAUSE = 1.0  # a longer pause between words starts a new cue
CUE_MIN_SECONDS = 0.5  # a short cue is held this long, if the next one allows


@dataclass
class Segment:
    start: float  # seconds; the stretch of audio decoded as one piece
    end: float  # seconds
    text: str  # the decoder's text for this piece
    words: list[Word] = field(default_factory=list)  # words with file times and confidences
    nbest: list[tuple[str, float]] = field(default_factory=list)  # (text, score), best first, when asked for
    score: float = 0.0  # the decoder's score of ``text``


@dataclass
class Transcript:
    """What recognition gives for one file or waveform (``asr.Recognizer.transcribe``)."""

    path: str  # the audio file ("<array>" for samples given in memory)
    duration: float  # seconds of audio
    segments: list[Segment] = field(default_factory=list)  # pieces decoded on their own, in time order

    @property
    def text(self) -> str:
        """The whole transcript: segment texts joined by spaces."""
        return " ".join(s.text for s in self.segments if s.text)

    @property
    def words(self) -> list[Word]:
        """Every word with its start and end (seconds from the start of the audio) and confidence."""
        return [w for s in self.segments for w in s.words]

    @property
    def nbest(self) -> list[tuple[str, float]]:
        """(text, score) alternatives, best first, when asked for: the segment's when the audio was
        decoded in one piece; for several segments (each with its own ``nbest``), only the best text
        with the summed score."""
        if len(self.segments) == 1:
            return list(self.segments[0].nbest)
        if any(s.nbest for s in self.segments):
            return [(self.text, sum(s.score for s in self.segments))]
        return []


def _rounded(value, digits: int = 3):
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v, digits) for v in value]
    return value


def to_text(transcript: Transcript) -> str:
    return transcript.text + "\n"


def to_json(transcript: Transcript) -> str:
    """``{"path", "duration", "text", "segments": [{"start", "end", "text", "words": [{"word", "start", "end",
    "conf"}], "nbest"?}]}``; numbers rounded to 3 decimals, ``nbest`` only when asked for."""
    segments = []
    for segment in transcript.segments:
        row = {"start": segment.start, "end": segment.end, "text": segment.text,
               "words": [{"word": w.word, "start": w.start, "end": w.end, "conf": w.conf} for w in segment.words]}
        if segment.nbest:
            row["nbest"] = [{"text": text, "score": score} for text, score in segment.nbest]
        segments.append(row)
    body = {"path": transcript.path, "duration": transcript.duration, "text": transcript.text, "segments": segments}
    return json.dumps(_rounded(body), ensure_ascii=False, indent=1) + "\n"


def from_json(text: str) -> Transcript:
    """The ``Transcript`` of a ``to_json`` document; files written before 0.2 (``confidence``) read too.

    Raises:
        ValueError: not such a JSON document.
    """
    try:
        body = json.loads(text)
        segments = []
        for row in body["segments"]:
            words = [Word(w["word"], float(w["start"]), float(w["end"]),
                          float(w["conf"] if "conf" in w else w.get("confidence", 0.0))) for w in row.get("words", [])]
            nbest = [(n["text"], float(n["score"])) for n in row.get("nbest", [])]
            segments.append(Segment(float(row["start"]), float(row["end"]), row["text"], words, nbest))
        return Transcript(body["path"], float(body["duration"]), segments)
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        reason = f"{type(err).__name__}: {err}"
        raise ValueError(f"not a transcript written by 'asr transcribe -f json' ({reason})") from None


def read_json(path: str | Path) -> Transcript:
    """``from_json`` of a file; errors name it."""
    try:
        return from_json(Path(path).read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def _wrap(words: list[str], width: int) -> list[str]:
    lines: list[str] = []
    for word in words:
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def cues(transcript: Transcript) -> list[tuple[float, float, str]]:
    """Subtitle cues ``(start, end, text)``: words grouped by segment, pause, length and duration."""
    groups: list[list[Word]] = []
    for segment in transcript.segments:
        current: list[Word] = []
        for word in segment.words:
            if current:
                text = " ".join(w.word for w in current + [word])
                if (len(_wrap(text.split(), CUE_LINE_CHARS)) > 2
                        or word.end - current[0].start > CUE_MAX_SECONDS
                        or word.start - current[-1].end > CUE_MAX_PAUSE):
                    groups.append(current)
                    current = []
            current.append(word)
        if current:
            groups.append(current)
    result = []
    for i, group in enumerate(groups):
        start, end = group[0].start, group[-1].end
        limit = groups[i + 1][0].start if i + 1 < len(groups) else max(end, transcript.duration)
        end = max(end, min(start + CUE_MIN_SECONDS, limit))
        result.append((start, end, "\n".join(_wrap([w.word for w in group], CUE_LINE_CHARS))))
    return result


def _timestamp(seconds: float, separator: str) -> str:
    ms = int(round(max(seconds, 0.0) * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def to_srt(transcript: Transcript) -> str:
    """SubRip: numbered cues, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``."""
    blocks = [f"{i}\n{_timestamp(s, ',')} --> {_timestamp(e, ',')}\n{text}\n"
              for i, (s, e, text) in enumerate(cues(transcript), 1)]
    return "\n".join(blocks)


def to_vtt(transcript: Transcript) -> str:
    """WebVTT: a ``WEBVTT`` header, then cues with ``HH:MM:SS.mmm --> HH:MM:SS.mmm``."""
    blocks = [f"{_timestamp(s, '.')} --> {_timestamp(e, '.')}\n{text}\n" for s, e, text in cues(transcript)]
    return "\n".join(["WEBVTT\n", *blocks])


FORMATS = {"txt": to_text, "json": to_json, "srt": to_srt, "vtt": to_vtt}  # output format -> renderer


def output_path(name: Path, audio_path: Path, fmt: str, output_dir: Path | None) -> Path:
    """Where format ``fmt`` of an input goes: next to the audio, or ``output_dir/name.fmt``."""
    if output_dir is None:
        return audio_path.parent / f"{name.name}.{fmt}"
    return output_dir / name.parent / f"{name.name}.{fmt}"


def write_outputs(transcript: Transcript, name: Path, formats: list[str] | tuple[str, ...],
                  output_dir: Path | None, stdout: TextIO, label: bool = False) -> list[str]:
    """Write ``transcript`` in every format; returns one error line per output that could not be written.

    ``txt`` goes to ``stdout`` (``PATH<TAB>TEXT`` with ``label``) unless ``output_dir`` is given; the
    others go next to the audio file or into ``output_dir`` (``output_path``).
    """
    failed = []
    audio_path = Path(transcript.path)
    for fmt in formats:
        if fmt == "txt" and output_dir is None:
            stdout.write(f"{audio_path}\t{transcript.text}\n" if label else f"{transcript.text}\n")
            stdout.flush()
            continue
        target = output_path(name, audio_path, fmt, output_dir)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(FORMATS[fmt](transcript), encoding="utf-8")
        except OSError as err:
            failed.append(f"{target}: cannot write output ({err.strerror or err})")
    return failed
