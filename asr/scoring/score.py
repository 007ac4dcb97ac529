"""WER/CER/PER scoring with sclite's alignment: transcript reading, speakers, errs reports, files.

Counts (Corr/Sub/Del/Ins per utterance, speaker and overall) are those of ``sctk sclite -s`` on
the same (normalised) inputs: see :mod:`asr.score_align`. Tokens are compared literally: sclite's
trn markup (``{ a / b }`` alternations, ``@``, a trailing ``*``) is not interpreted, and case is
kept unless normalised (sclite without ``-s`` lower-cases ASCII). Reports beyond the errs file are
in :mod:`asr.score_report`, significance tests in :mod:`asr.score_stats`.
"""

import json
import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path

from ..config import ScoreConfig
from .align import align_batch
from .normalize import Normalizer

__all__ = ["UNITS", "UttResult", "ScoreResult", "read_transcripts", "read_utt2spk", "sclite_speaker", "score",
           "error_counts", "normalization_line", "write_report", "system_name"]

log = logging.getLogger(__name__)

UNITS = ("word", "char", "phone")
RATE_NAMES = {"word": "WER", "char": "CER", "phone": "PER"}
_JSON_SUFFIXES = {".jsonl", ".json"}
_STRIP_SUFFIXES = {".txt", ".text", ".trn", ".jsonl", ".json"}
_TRN_LINE = re.compile(r"^(.*?)\s*\(([^()\s]+)\)$")

Op = tuple[str, str | None, str | None]


@dataclass
class UttResult:
    """Alignment of one utterance: ``ops`` holds ``(op, ref_tok, hyp_tok)`` with op in C/S/D/I.

    ``spk`` is its speaker; ``corr``/``sub``/``dele``/``ins`` are counted from ``ops`` at construction.
    """

    id: str
    ref: list[str]
    hyp: list[str]
    ops: list[Op]
    spk: str = ""

    corr: int = field(init=False)
    sub: int = field(init=False)
    dele: int = field(init=False)
    ins: int = field(init=False)

    def __post_init__(self) -> None:
        codes = "".join(map(itemgetter(0), self.ops))
        self.corr, self.sub = codes.count("C"), codes.count("S")
        self.dele, self.ins = codes.count("D"), codes.count("I")

    @property
    def errors(self) -> int:
        return self.sub + self.dele + self.ins


@dataclass
class ScoreResult:
    """Scores of a hypothesis set; ``missing`` lists reference ids without a hypothesis.

    ``normalization`` records the text normalisation applied (:meth:`Normalizer.describe`).
    The totals (``num_ref``, ``corr``, ``sub``, ``dele``, ``ins``, ``sent_errors``) are summed
    over ``utts`` at construction.
    """

    unit: str
    utts: list[UttResult]
    missing: list[str]
    normalization: dict[str, object] = field(default_factory=dict)

    num_ref: int = field(init=False)
    corr: int = field(init=False)
    sub: int = field(init=False)
    dele: int = field(init=False)
    ins: int = field(init=False)
    sent_errors: int = field(init=False)

    def __post_init__(self) -> None:
        self.num_ref = sum(len(u.ref) for u in self.utts)
        self.corr, self.sub, self.dele, self.ins = (sum(getattr(u, a) for u in self.utts)
                                                    for a in ("corr", "sub", "dele", "ins"))
        self.sent_errors = sum(1 for u in self.utts if u.sub or u.dele or u.ins)

    @property
    def num_sents(self) -> int:
        return len(self.utts)

    @property
    def errors(self) -> int:
        return self.sub + self.dele + self.ins

    @property
    def err_rate(self) -> float:
        """Error rate in percent; 0.0 for no errors on an empty reference, inf for errors on one."""
        if self.num_ref == 0:
            return float("inf") if self.errors else 0.0
        return 100.0 * self.errors / self.num_ref

    @property
    def rate_name(self) -> str:
        """``WER``, ``CER`` or ``PER``."""
        return RATE_NAMES[self.unit]

    def summary_line(self) -> str:
        """Kaldi/icefall summary, e.g. ``%WER 9.81 [ 76 / 775, 4 ins, 19 del, 53 sub ]``."""
        return (f"%{self.rate_name} {self.err_rate:.2f} [ {self.errors} / {self.num_ref}, "
                f"{self.ins} ins, {self.dele} del, {self.sub} sub ]")

    def by_speaker(self) -> dict[str, "ScoreResult"]:
        """One result per speaker, sorted by speaker (``missing`` restricted to the speaker)."""
        groups: dict[str, list[UttResult]] = {}
        for utt in self.utts:
            groups.setdefault(utt.spk, []).append(utt)
        missing = set(self.missing)
        return {spk: ScoreResult(self.unit, utts, [u.id for u in utts if u.id in missing], self.normalization)
                for spk, utts in sorted(groups.items())}


def _parse_json(line: str) -> tuple[str, str]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON ({e.msg})") from None
    if not (isinstance(obj, dict) and isinstance(obj.get("id"), str) and isinstance(obj.get("text"), str)):
        raise ValueError("JSON line needs string 'id' and 'text' fields")
    return obj["id"], obj["text"]


def _parse_trn(line: str) -> tuple[str, str]:
    head, paren, utt_id = line[:-1].rpartition("(")
    if not line.endswith(")") or not paren or not utt_id or any(c in utt_id for c in "() \t"):
        raise ValueError("expected trn line 'words ... (uttid)'")
    return utt_id, " ".join(head.split())


def _parse_kaldi(line: str) -> tuple[str, str]:
    parts = line.split(maxsplit=1)
    return parts[0], " ".join(parts[1].split()) if len(parts) > 1 else ""


def read_transcripts(path: str | Path) -> dict[str, str]:
    """Read ``id -> text`` from Kaldi text, sclite trn or JSON lines (``.jsonl``/``.json``).

    The format is detected per file: JSON lines by suffix, trn if the first non-blank
    line ends in ``(uttid)``, Kaldi text otherwise. Blank lines are skipped.

    Raises:
        ValueError: ``FILE:LINE: ...`` on a duplicate id or malformed line.
    """
    path = Path(path)
    parse = _parse_json if path.suffix.lower() in _JSON_SUFFIXES else None
    out: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            if parse is None:
                parse = _parse_trn if _TRN_LINE.match(line) else _parse_kaldi
            try:
                utt_id, text = parse(line)
            except ValueError as e:
                raise ValueError(f"{path}:{lineno}: {e}") from None
            if utt_id in out:
                raise ValueError(f"{path}:{lineno}: duplicate utterance id '{utt_id}'")
            out[utt_id] = text
    return out


def read_utt2spk(path: str | Path) -> dict[str, str]:
    """Read a Kaldi ``utt2spk`` file (``uttid speaker`` per line; blank lines skipped).

    Raises:
        ValueError: ``FILE:LINE: ...`` on a line without exactly two fields or a duplicate id.
    """
    out: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            where = f"{path}:{lineno}"
            if len(fields) != 2:
                raise ValueError(f"{where}: expected 'uttid speaker'")
            if fields[0] in out:
                raise ValueError(f"{where}: duplicate utterance id '{fields[0]}'")
            out[fields[0]] = fields[1]
    return out


def sclite_speaker(utt_id: str) -> str:
    """The speaker sclite reads from a trn id (``-i rm``): the part before the first ``-``, else
    before the first ``_``, else (where sclite reports an error) the whole id."""
    for sep in "-_":
        if sep in utt_id:
            return utt_id.split(sep, 1)[0]
    return utt_id


def _tokenizer(unit: str, normalizer: Normalizer) -> Callable[[str, str], list[str]]:
    """``(text, utt_id) -> tokens`` of ``unit`` after ``normalizer`` (``str.split`` when it does nothing)."""
    words = str.split if normalizer.is_identity else normalizer.words

    def tokens(text: str, utt_id: str) -> list[str]:
        try:
            out = words(text)
        except ValueError as e:
            raise ValueError(f"utterance '{utt_id}': {e}") from None
        return list("".join(out)) if unit == "char" else out

    return tokens


def _ops(ref: list[str], hyp: list[str], codes: str) -> list[Op]:
    r, h = iter(ref), iter(hyp)
    return [("D", next(r), None) if c == "D" else ("I", None, next(h)) if c == "I" else (c, next(r), next(h))
            for c in codes]


def score(refs: dict[str, str], hyps: dict[str, str], unit: str = ScoreConfig.unit, *,
          utt2spk: dict[str, str] | None = None, normalizer: Normalizer | None = None) -> ScoreResult:
    """Align every reference with its hypothesis as sclite does (missing hypotheses count as empty).

    Args:
        unit: ``word``, ``char`` (spaces removed) or ``phone`` (whitespace-separated phones).
        utt2spk: speaker of each reference id; default :func:`sclite_speaker` of the id.
        normalizer: applied to both sides; default none.

    Raises:
        ValueError: on an unknown unit, phone folding with another unit, a hypothesis id without
            a reference, or a reference id missing from ``utt2spk``.
    """
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}, expected one of {UNITS}")
    normalizer = normalizer or Normalizer()
    if normalizer.fold is not None and unit != "phone":
        raise ValueError(f"phone folding applies to unit 'phone', not {unit!r}")
    orphan = next((i for i in hyps if i not in refs), None)
    if orphan is not None:
        raise ValueError(f"hypothesis '{orphan}' has no reference")
    if utt2spk is not None:
        unknown = next((i for i in refs if i not in utt2spk), None)
        if unknown is not None:
            raise ValueError(f"utterance '{unknown}' has no speaker in utt2spk")
    missing = sorted(i for i in refs if i not in hyps)
    if missing:
        log.warning("%d of %d references have no hypothesis (scored as deletions), e.g. %s",
                       len(missing), len(refs), ", ".join(missing[:5]))
    ids = sorted(refs)
    tokens = _tokenizer(unit, normalizer)
    pairs = [(tokens(refs[i], i), tokens(hyps.get(i, ""), i)) for i in ids]
    utts = [UttResult(i, ref, hyp, _ops(ref, hyp, codes), utt2spk[i] if utt2spk is not None else sclite_speaker(i))
            for i, (ref, hyp), codes in zip(ids, pairs, align_batch(pairs))]
    return ScoreResult(unit, utts, missing, normalizer.describe())


def _alignment_lines(utt: UttResult) -> list[str]:
    refs, hyps, evals = [], [], []
    for op, r, h in utt.ops:
        r, h = r or "***", h or "***"
        width = max(len(r), len(h))
        refs.append(r.ljust(width))
        hyps.append(h.ljust(width))
        evals.append(("" if op == "C" else op).ljust(width))
    rows = (("REF:", refs), ("HYP:", hyps), ("Eval:", evals))
    head = [f"id: {utt.id}", f"Scores: (#C #S #D #I) {utt.corr} {utt.sub} {utt.dele} {utt.ins}"]
    return head + [f"{tag:<6}{' '.join(cols)}".rstrip() for tag, cols in rows]


def error_counts(result: ScoreResult) -> dict[str, Counter]:
    """Counters of substitution pairs (``"ref -> hyp"``, key ``S``), deleted (``D``) and inserted (``I``) tokens."""
    counts: dict[str, Counter] = {"S": Counter(), "D": Counter(), "I": Counter()}
    for utt in result.utts:
        for op, r, h in utt.ops:
            if op == "S":
                counts["S"][f"{r} -> {h}"] += 1
            elif op in counts:
                counts[op][r if op == "D" else h] += 1
    return counts


def _error_tables(result: ScoreResult) -> list[str]:
    counts = error_counts(result)
    lines = []
    for op, title in (("S", "SUBSTITUTIONS: count ref -> hyp"), ("D", "DELETIONS: count ref"),
                      ("I", "INSERTIONS: count hyp")):
        ranked = sorted(counts[op].items(), key=lambda kv: (-kv[1], kv[0]))
        lines += ["", title] + [f"{n}   {k}" for k, n in ranked]
    return lines


def normalization_line(normalization: dict[str, object]) -> str:
    """One line naming every normalisation option, e.g. ``Normalisation: case=lower ...``."""
    parts = []
    for key, value in normalization.items():
        if isinstance(value, dict):
            value = f"{value['path']} ({value['rules']} rules, sha256 {str(value['sha256'])[:12]})"
        parts.append(f"{key}={value}")
    return "Normalisation: " + (" ".join(parts) if parts else "none")


def write_report(result: ScoreResult, path: str | Path) -> None:
    """Write an errs file: summary, normalisation, sentence errors, per-utterance alignments, error tables."""
    ser = 100.0 * result.sent_errors / result.num_sents if result.num_sents else 0.0
    lines = [result.summary_line(),
             f"Scored {result.num_sents} sentences, {result.sent_errors} with errors (S.Err {ser:.2f}%)",
             normalization_line(result.normalization)]
    if result.missing:
        lines.append(f"Missing hypotheses (scored as deletions): {' '.join(result.missing)}")
    lines += ["", "PER-UTTERANCE ALIGNMENTS:"]
    for utt in result.utts:
        lines += [""] + _alignment_lines(utt)
    lines += _error_tables(result)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def system_name(path: str | Path) -> str:
    """A hypothesis file's name in reports: the file name without .txt/.text/.trn/.jsonl/.json suffixes."""
    name = Path(path).name
    while Path(name).suffix.lower() in _STRIP_SUFFIXES and Path(name).stem:
        name = Path(name).stem
    return name
