"""What ``asr transcribe`` produces for one file, and its file formats: text, JSON, SRT, WebVTT.

Times are seconds from the start of the file. A word's confidence is the mean CTC posterior of its
units over the frames aligned to them (0 to 1). Subtitle cues hold at most two lines of
``CUE_LINE_CHARS`` characters and ``CUE_MAX_SECONDS`` seconds; a pause of ``CUE_MAX_PAUSE``
seconds or a segment boundary starts a new cue.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

__all__ = ["Word", "Segment", "Transcript", "FORMATS", "to_text", "to_json", "to_srt", "to_vtt", "cues"]

CUE_LINE_CHARS = 42  # the usual broadcast subtitle line (BBC, Netflix: 42)
CUE_MAX_SECONDS = 7.0  # longest time one cue stays on screen
CUE_MAX_PAUSE = 1.0  # a longer pause between words starts a new cue
CUE_MIN_SECONDS = 0.5  # a short cue is held this long, if the next one allows


@dataclass
class Word:
    word: str  # the word as the tokenizer spells it
    start: float  # seconds
    end: float  # seconds
    confidence: float  # mean posterior of its units over their frames, 0 to 1


@dataclass
class Segment:
    start: float  # seconds; the stretch of audio decoded as one piece
    end: float  # seconds
    text: str  # the decoder's text for this piece
    words: list[Word] = field(default_factory=list)
    nbest: list[tuple[str, float]] = field(default_factory=list)  # (text, score), best first, when asked for


@dataclass
class Transcript:
    path: str  # the audio file
    duration: float  # seconds of audio in the file
    segments: list[Segment] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The whole transcript: segment texts joined by spaces."""
        return " ".join(s.text for s in self.segments if s.text)

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]


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
    "confidence"}], "nbest"?}]}``; numbers rounded to 3 decimals, ``nbest`` only when asked for."""
    segments = []
    for segment in transcript.segments:
        row = asdict(segment)
        if segment.nbest:
            row["nbest"] = [{"text": text, "score": score} for text, score in segment.nbest]
        else:
            del row["nbest"]
        segments.append(row)
    body = {"path": transcript.path, "duration": transcript.duration, "text": transcript.text, "segments": segments}
    return json.dumps(_rounded(body), ensure_ascii=False, indent=1) + "\n"


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
