"""WER/CER scoring: transcript reading, jiwer alignments, sclite/icefall-style reports."""

import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import jiwer

__all__ = ["UttResult", "ScoreResult", "read_transcripts", "score", "write_report", "score_files"]

logger = logging.getLogger(__name__)

UNITS = ("word", "char")
_JSON_SUFFIXES = {".jsonl", ".json"}
_STRIP_SUFFIXES = {".txt", ".text", ".trn", ".jsonl", ".json"}
_TRN_LINE = re.compile(r"^(.*?)\s*\(([^()\s]+)\)$")
_CHUNK_OPS = {"equal": "C", "substitute": "S", "delete": "D", "insert": "I"}

Op = tuple[str, str | None, str | None]


@dataclass
class UttResult:
    """Alignment of one utterance: ``ops`` holds ``(op, ref_tok, hyp_tok)`` with op in C/S/D/I.

    ``corr``/``sub``/``dele``/``ins`` are counted from ``ops`` at construction.
    """

    id: str
    ref: list[str]
    hyp: list[str]
    ops: list[Op]

    corr: int = field(init=False)
    sub: int = field(init=False)
    dele: int = field(init=False)
    ins: int = field(init=False)

    def __post_init__(self) -> None:
        n = Counter(op for op, _, _ in self.ops)
        self.corr, self.sub, self.dele, self.ins = n["C"], n["S"], n["D"], n["I"]

    @property
    def errors(self) -> int:
        return self.sub + self.dele + self.ins


def _total(attr: str) -> property:
    """Property summing an ``UttResult`` count over ``self.utts``."""
    return property(lambda self: sum(getattr(u, attr) for u in self.utts))


@dataclass
class ScoreResult:
    """Scores of a hypothesis set; ``missing`` lists reference ids without a hypothesis."""

    unit: str
    utts: list[UttResult]
    missing: list[str]

    @property
    def num_sents(self) -> int:
        return len(self.utts)

    @property
    def num_ref(self) -> int:
        return sum(len(u.ref) for u in self.utts)

    corr = _total("corr")
    sub = _total("sub")
    dele = _total("dele")
    ins = _total("ins")

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
    def sent_errors(self) -> int:
        return sum(1 for u in self.utts if u.errors)

    def summary_line(self) -> str:
        """Kaldi/icefall summary, e.g. ``%WER 9.81 [ 76 / 775, 4 ins, 19 del, 53 sub ]``."""
        name = "%WER" if self.unit == "word" else "%CER"
        return (f"{name} {self.err_rate:.2f} [ {self.errors} / {self.num_ref}, "
                f"{self.ins} ins, {self.dele} del, {self.sub} sub ]")


def _parse_json(line: str, where: str) -> tuple[str, str]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"{where}: invalid JSON ({e.msg})") from None
    if not (isinstance(obj, dict) and isinstance(obj.get("id"), str) and isinstance(obj.get("text"), str)):
        raise ValueError(f"{where}: JSON line needs string 'id' and 'text' fields")
    return obj["id"], obj["text"]


def _parse_trn(line: str, where: str) -> tuple[str, str]:
    m = _TRN_LINE.match(line)
    if m is None:
        raise ValueError(f"{where}: expected trn line 'words ... (uttid)'")
    return m.group(2), " ".join(m.group(1).split())


def _parse_kaldi(line: str, where: str) -> tuple[str, str]:
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
            where = f"{path}:{lineno}"
            utt_id, text = parse(line, where)
            if utt_id in out:
                raise ValueError(f"{where}: duplicate utterance id '{utt_id}'")
            out[utt_id] = text
    return out


def _tokens(text: str, unit: str) -> list[str]:
    return text.split() if unit == "word" else list("".join(text.split()))


def _align(ref: list[str], hyp: list[str], unit: str) -> list[Op]:
    if not ref or not hyp:
        return [("D", r, None) for r in ref] + [("I", None, h) for h in hyp]
    if unit == "word":
        out = jiwer.process_words(" ".join(ref), " ".join(hyp))
    else:
        out = jiwer.process_characters("".join(ref), "".join(hyp))
    ops: list[Op] = []
    for c in out.alignments[0]:
        op = _CHUNK_OPS[c.type]
        n = max(c.ref_end_idx - c.ref_start_idx, c.hyp_end_idx - c.hyp_start_idx)
        for k in range(n):
            r = ref[c.ref_start_idx + k] if op != "I" else None
            h = hyp[c.hyp_start_idx + k] if op != "D" else None
            ops.append((op, r, h))
    return ops


def score(refs: dict[str, str], hyps: dict[str, str], unit: str = "word") -> ScoreResult:
    """Align every reference with its hypothesis (missing hypotheses count as empty).

    Raises:
        ValueError: on an unknown unit or a hypothesis id without a reference.
    """
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}, expected one of {UNITS}")
    orphan = next((i for i in hyps if i not in refs), None)
    if orphan is not None:
        raise ValueError(f"hypothesis '{orphan}' has no reference")
    missing = sorted(i for i in refs if i not in hyps)
    if missing:
        logger.warning("%d of %d references have no hypothesis (scored as deletions), e.g. %s",
                       len(missing), len(refs), ", ".join(missing[:5]))
    utts = []
    for utt_id in sorted(refs):
        ref, hyp = _tokens(refs[utt_id], unit), _tokens(hyps.get(utt_id, ""), unit)
        utts.append(UttResult(utt_id, ref, hyp, _align(ref, hyp, unit)))
    return ScoreResult(unit, utts, missing)


def _alignment_lines(utt: UttResult) -> list[str]:
    refs, hyps, evals = [], [], []
    for op, r, h in utt.ops:
        r, h = r or "***", h or "***"
        width = max(len(r), len(h))
        refs.append(r.ljust(width))
        hyps.append(h.ljust(width))
        evals.append(("" if op == "C" else op).ljust(width))
    rows = (("REF:", refs), ("HYP:", hyps), ("Eval:", evals))
    return [f"id: {utt.id}"] + [f"{tag:<6}{' '.join(cols)}".rstrip() for tag, cols in rows]


def _error_tables(result: ScoreResult) -> list[str]:
    counts: dict[str, Counter] = {"S": Counter(), "D": Counter(), "I": Counter()}
    for utt in result.utts:
        for op, r, h in utt.ops:
            if op == "S":
                counts["S"][f"{r} -> {h}"] += 1
            elif op in counts:
                counts[op][r if op == "D" else h] += 1
    lines = []
    for op, title in (("S", "SUBSTITUTIONS: count ref -> hyp"), ("D", "DELETIONS: count ref"),
                      ("I", "INSERTIONS: count hyp")):
        ranked = sorted(counts[op].items(), key=lambda kv: (-kv[1], kv[0]))
        lines += ["", title] + [f"{n}   {k}" for k, n in ranked]
    return lines


def write_report(result: ScoreResult, path: str | Path) -> None:
    """Write an errs file: summary, sentence errors, per-utterance alignments, error tables."""
    ser = 100.0 * result.sent_errors / result.num_sents if result.num_sents else 0.0
    lines = [result.summary_line(),
             f"Scored {result.num_sents} sentences, {result.sent_errors} with errors (S.Err {ser:.2f}%)"]
    if result.missing:
        lines.append(f"Missing hypotheses (scored as deletions): {' '.join(result.missing)}")
    lines += ["", "PER-UTTERANCE ALIGNMENTS:"]
    for utt in result.utts:
        lines += [""] + _alignment_lines(utt)
    lines += _error_tables(result)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _stem(path: Path) -> str:
    name = path.name
    while Path(name).suffix.lower() in _STRIP_SUFFIXES and Path(name).stem:
        name = Path(name).stem
    return name


def score_files(ref_path: str | Path, hyp_paths: list[str | Path], out_dir: str | Path,
                units: tuple[str, ...] = UNITS) -> list[str]:
    """Score each hypothesis file per unit; write errs files and ``wer-summary.txt``.

    Returns:
        ``"<hypstem> <summary line>"`` per (hyp, unit), best first within each unit.
    """
    stems = [_stem(Path(p)) for p in hyp_paths]
    dup = next((s for s in stems if stems.count(s) > 1), None)
    if dup is not None:
        raise ValueError(f"two hypothesis files share the name stem '{dup}'")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    refs = read_transcripts(ref_path)
    rows: list[tuple[str, ScoreResult]] = []
    for hyp_path, stem in zip(hyp_paths, stems):
        hyps = read_transcripts(hyp_path)
        for unit in units:
            result = score(refs, hyps, unit)
            write_report(result, out_dir / f"errs-{stem}-{unit}.txt")
            rows.append((stem, result))
    rows.sort(key=lambda row: (units.index(row[1].unit), row[1].err_rate, row[0]))
    summary = "".join(f"{s}\t{r.summary_line()}\n" for s, r in rows)
    (out_dir / "wer-summary.txt").write_text(summary, encoding="utf-8")
    logger.info("wrote %d errs files and %s", len(rows), out_dir / "wer-summary.txt")
    return [f"{s} {r.summary_line()}" for s, r in rows]
