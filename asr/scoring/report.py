"""Score reports: sclite ``sys``/``raw`` tables by speaker, JSON, a Markdown table and an HTML page with plots.

The tables reproduce sclite's numbers digit for digit: percentages are rounded half away from
zero (its ``F_ROUND``), speakers without reference words show raw counts marked ``*`` and are
left out of the Mean/S.D./Median of the error columns (marked ``+``), S.D. divides by n - 1.
"""

import base64
import html
import io
import json
import logging
import statistics
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..config import ScoreConfig
from .normalize import Normalizer
from .score import (ScoreResult, error_counts, normalization_line, read_transcripts, read_utt2spk, score,
                    system_name, write_report)

__all__ = ["sys_table", "result_dict", "markdown_table", "write_html", "write_json", "score_files"]

log = logging.getLogger(__name__)

_COLUMNS = ("Corr", "Sub", "Del", "Ins", "Err", "S.Err")
_TOP = 50
_MAX_BARS = 40


def _pct(num: float, den: float) -> float:
    """sclite's ``pct()`` as the packaged sclite computes it (double precision; 0 for a zero denominator)."""
    return 0.0 if den == 0 else num / den * 100.0


def _round(x: float, digits: int) -> float:
    """sclite's ``F_ROUND``: half away from zero (``83.75`` -> ``83.8``, where printf gives ``83.7``)."""
    scaled = x * 10.0 ** digits
    return int(scaled + (0.5 if x > 0 else -0.5)) / 10.0 ** digits


def _stats(values: list[float]) -> tuple[float, float, float]:
    """Mean, S.D. (n - 1; 0 when all values agree) and median, as sclite's summary rows."""
    if not values:
        return 0.0, 0.0, 0.0
    mean = sum(values) / len(values)
    ss = sum((v - mean) ** 2 for v in values)
    sd = (ss / (len(values) - 1)) ** 0.5 if ss else 0.0
    return mean, sd, float(statistics.median(values))


def _counts(r: ScoreResult) -> list[int]:
    return [r.corr, r.sub, r.dele, r.ins, r.errors, r.sent_errors]


def _cells(values: list[str]) -> str:
    """Cells as sclite sets them: each value right-aligned in 5 then a mark (``*``, ``+`` or space)."""
    return " ".join(v[:-1].rjust(5) + v[-1] if v[-1:] in ("*", "+") else v.rjust(5) + " " for v in values)


def _fmt(values: list[float]) -> list[str]:
    return [f"{_round(v, 1):.1f}" for v in values]


def sys_table(result: ScoreResult, title: str, raw: bool = False) -> str:
    """sclite's ``sum`` (``raw=False``: percentages) or ``rsum`` (counts) table by speaker."""
    speakers = result.by_speaker()
    w = max([7] + [len(n) for n in speakers])
    a, b = max(5, len(str(result.num_sents))), max(6, len(str(result.num_ref)) + 1)

    def row(label: str, snt: str, wrd: str, right: str, centre: bool = False) -> str:
        label = label.center(w + 1) if centre else f" {label:<{w}}"
        return f"|{label}|{snt:>{a}} {wrd:>{b}} |{right}|"

    def header(unit_col: str) -> str:
        return f"| {'SPKR':<{w}}| {'# Snt':>{a}}{unit_col:>{b}} |{_cells(list(_COLUMNS))}|"

    rows, err_vals, serr_vals = [], [], []
    for name, r in speakers.items():
        counts = _counts(r)
        if raw:
            vals = [float(c) for c in counts]
            right = _cells([str(c) for c in counts])
        elif r.num_ref == 0:
            vals = [float(c) for c in counts[:5]] + [_pct(counts[5], r.num_sents)]
            right = _cells([f"{c}*" for c in counts[:5]] + _fmt(vals[5:]))
        else:
            vals = [_pct(c, r.num_ref) for c in counts[:5]] + [_pct(counts[5], r.num_sents)]
            right = _cells(_fmt(vals))
        serr_vals.append(vals[5])
        if raw or r.num_ref:
            err_vals.append(vals[:5])
        rows.append(row(name, str(r.num_sents), str(r.num_ref), right))

    total = _counts(result)
    if raw:
        sum_row = row("Sum", str(result.num_sents), str(result.num_ref), _cells([str(c) for c in total]))
    else:
        pcts = [_pct(c, result.num_ref) for c in total[:5]] + [_pct(total[5], result.num_sents)]
        sum_row = row("Sum/Avg", str(result.num_sents), str(result.num_ref), _cells(_fmt(pcts)))
    columns = [[float(r.num_sents) for r in speakers.values()], [float(r.num_ref) for r in speakers.values()]]
    columns += [[v[c] for v in err_vals] for c in range(5)] + [serr_vals]
    stats = [_stats(col) for col in columns]
    zero = not raw and any(r.num_ref == 0 for r in speakers.values())
    summary = [row(label, *_fmt([s[k] for s in stats[:2]]),
                   _cells([v + "+" if zero and c < 5 else v for c, v in enumerate(_fmt([s[k] for s in stats[2:]]))]),
                   centre=True)
               for k, label in enumerate(("Mean", "S.D.", "Median"))]

    head = header("# Chr" if result.unit == "char" else "# Wrd")
    inner = len(head) - 2
    sep = "|" + "+".join("-" * len(part) for part in head[1:-1].split("|")) + "|"
    lines = [f",{'-' * inner}.", f"|{title.center(inner)}|", f"|{'-' * inner}|", head, sep]
    lines += [x for r in rows for x in (r, sep)][:-1]
    lines += [f"|{'=' * inner}|", sum_row, f"|{'=' * inner}|"] + summary + [f"`{'-' * inner}'"]
    heading = "SYSTEM SUMMARY " + ("COUNTS" if raw else "PERCENTAGES") + " by SPEAKER"
    if zero:
        lines += ["", "* No reference tokens for this/these speaker(s): counts rather than percentages.",
                  "+ Speaker(s) without reference tokens left out."]
    return "\n".join([heading, ""] + lines) + "\n"


def _ranked(counter: Counter, top: int) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:top]


def _summary(r: ScoreResult) -> dict[str, object]:
    return {"snt": r.num_sents, "wrd": r.num_ref, "corr": r.corr, "sub": r.sub, "del": r.dele, "ins": r.ins,
            "err": r.errors, "s_err": r.sent_errors, "err_rate": r.err_rate,
            "s_err_rate": 100.0 * r.sent_errors / r.num_sents if r.num_sents else 0.0}


def result_dict(result: ScoreResult, system: str, files: dict[str, str] | None = None) -> dict[str, object]:
    """Everything a script needs: totals, speakers, utterances, top confusions, normalisation."""
    counts = error_counts(result)
    return {
        "system": system, "unit": result.unit, "metric": result.rate_name, "files": files or {},
        "aligner": "sclite-compatible (correct 0, substitution 4, insertion/deletion 3)",
        "normalization": result.normalization,
        "overall": _summary(result),
        "speakers": {spk: _summary(r) for spk, r in result.by_speaker().items()},
        "missing": result.missing,
        "confusions": [[*k.split(" -> ", 1), n] for k, n in _ranked(counts["S"], _TOP)],
        "deletions": [[k, n] for k, n in _ranked(counts["D"], _TOP)],
        "insertions": [[k, n] for k, n in _ranked(counts["I"], _TOP)],
        "utterances": [{"id": u.id, "spk": u.spk, "ref_len": len(u.ref), "corr": u.corr, "sub": u.sub,
                        "del": u.dele, "ins": u.ins} for u in result.utts],
    }


def markdown_table(rows: list[tuple[str, ScoreResult]]) -> str:
    """A RESULTS.md table, one line per (system, unit), percentages of reference tokens."""
    lines = ["| system | metric | Snt | Wrd | Corr | Sub | Del | Ins | Err | S.Err |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for system, r in rows:
        pct = [100.0 * c / r.num_ref if r.num_ref else 0.0 for c in (r.corr, r.sub, r.dele, r.ins)]
        ser = 100.0 * r.sent_errors / r.num_sents if r.num_sents else 0.0
        cells = [f"{v:.2f}" for v in pct] + [f"**{r.err_rate:.2f}**", f"{ser:.2f}"]
        lines.append(f"| {system} | {r.rate_name} | {r.num_sents} | {r.num_ref} | " + " | ".join(cells) + " |")
    norm = {normalization_line(r.normalization) for _, r in rows}
    return "\n".join(lines) + "\n\n" + "\n".join(f"{n}." for n in sorted(norm)) + "\n"


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(result: ScoreResult) -> list[tuple[str, str]]:
    """(caption, base64 PNG) for error rate per speaker, error types and error rate vs length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name = result.rate_name
    speakers = sorted(result.by_speaker().items(), key=lambda kv: (-kv[1].err_rate, kv[0]))
    shown = [(s, r) for s, r in speakers if r.num_ref][:_MAX_BARS]
    more = f" ({len(shown)} worst of {len(speakers)})" if len(speakers) > len(shown) else ""
    out = []

    names, x = [s for s, _ in shown], np.arange(len(shown))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.3 * len(shown)), 3.5))
    ax.bar(x, [r.err_rate for _, r in shown], color="tab:blue")
    ax.axhline(result.err_rate, color="tab:red", linestyle="--", label=f"overall {result.err_rate:.2f}%")
    ax.set_xticks(x, names, rotation=90)
    ax.set_ylabel(f"{name} (%)")
    ax.legend()
    out.append((f"{name} per speaker{more}", _png(fig)))
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(max(6.0, 0.3 * len(shown)), 3.5))
    bottom = np.zeros(len(shown))
    for label, attr, colour in (("Sub", "sub", "tab:orange"), ("Del", "dele", "tab:green"),
                                ("Ins", "ins", "tab:purple")):
        vals = np.array([100.0 * getattr(r, attr) / r.num_ref for _, r in shown])
        total = 100.0 * getattr(result, attr) / result.num_ref if result.num_ref else 0.0
        ax.bar(x, vals, bottom=bottom, color=colour, label=f"{label} (overall {total:.2f}%)")
        bottom += vals
    ax.set_xticks(x, names, rotation=90)
    ax.set_ylabel("% of reference tokens")
    ax.legend()
    out.append((f"Error types per speaker{more}", _png(fig)))
    plt.close(fig)

    lens = np.array([len(u.ref) for u in result.utts])
    errs = np.array([u.errors for u in result.utts])
    if len(lens) and lens.max() > 0:
        edges = np.unique(np.quantile(lens, np.linspace(0, 1, 11)).round()).astype(int)
        edges = np.append(edges[:-1], edges[-1] + 1) if len(edges) > 1 else np.array([edges[0], edges[0] + 1])
        idx = np.clip(np.searchsorted(edges, lens, side="right") - 1, 0, len(edges) - 2)
        n_ref = np.bincount(idx, weights=lens, minlength=len(edges) - 1)
        n_err = np.bincount(idx, weights=errs, minlength=len(edges) - 1)
        n_utt = np.bincount(idx, minlength=len(edges) - 1)
        keep = np.flatnonzero(n_ref > 0)
        labels = [f"{lo}-{hi - 1}" if hi - 1 > lo else f"{lo}" for lo, hi in zip(edges[:-1], edges[1:])]
        rates = 100.0 * n_err[keep] / n_ref[keep]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(np.arange(len(keep)), rates, marker="o")
        for k, (y, n) in enumerate(zip(rates, n_utt[keep])):
            ax.annotate(str(n), (k, y), textcoords="offset points", xytext=(0, 5), ha="center", fontsize=7)
        ax.set_xticks(np.arange(len(keep)), [labels[k] for k in keep])
        ax.set_xlabel(f"reference length ({result.unit}s)")
        ax.set_ylabel(f"{name} (%)")
        out.append((f"{name} vs utterance length (numbers: utterances per bin)", _png(fig)))
        plt.close(fig)
    return out


def _html_table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_html(rows: list[tuple[str, ScoreResult]], path: str | Path, title: str = "Scoring report") -> None:
    """One self-contained page: summary table, then per (system, unit) sys table, plots, top errors."""
    parts = [f"<h1>{html.escape(title)}</h1>",
             _html_table(["system", "metric", "Snt", "Wrd", "Corr", "Sub", "Del", "Ins", "Err", "S.Err", "rate %"],
                         [[s, r.rate_name, r.num_sents, r.num_ref, r.corr, r.sub, r.dele, r.ins, r.errors,
                           r.sent_errors, f"{r.err_rate:.2f}"] for s, r in rows])]
    for system, r in rows:
        counts = error_counts(r)
        parts += [f"<h2>{html.escape(system)}: {r.rate_name} {r.err_rate:.2f}%</h2>",
                  f"<p>{html.escape(normalization_line(r.normalization))}</p>",
                  f"<pre>{html.escape(sys_table(r, system))}</pre>"]
        if r.missing:
            parts.append(f"<p>{len(r.missing)} references without a hypothesis (scored as deletions): "
                         f"{html.escape(' '.join(r.missing[:20]))}{' ...' if len(r.missing) > 20 else ''}</p>")
        parts += [f"<figure><img src='data:image/png;base64,{png}'><figcaption>{html.escape(cap)}</figcaption></figure>"
                  for cap, png in _plots(r)]
        parts.append("<div class='tops'>" + "".join(
            f"<div><h3>{name}</h3>{_html_table(['count', head], [[n, k] for k, n in _ranked(counts[op], 15)])}</div>"
            for op, name, head in (("S", "Substitutions", "ref -> hyp"), ("D", "Deletions", "ref"),
                                   ("I", "Insertions", "hyp"))) + "</div>")
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:.5em 0}"
             "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}pre{font-size:12px}"
             ".tops{display:flex;gap:2em}figure{display:inline-block;margin:0 1em 1em 0}")
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>\n")
    Path(path).write_text(page, encoding="utf-8")


def write_json(data: dict[str, object], path: str | Path) -> None:
    """Write ``data`` as compact JSON (one line: the C encoder, fast for 100k utterances)."""
    Path(path).write_text(json.dumps(data, ensure_ascii=False) + "\n", encoding="utf-8")


def score_files(ref_path: str | Path, hyp_paths: list[str | Path], out_dir: str | Path,
                units: tuple[str, ...] = ScoreConfig.units, *, utt2spk: str | Path | None = None,
                normalizer: Normalizer | None = None, html: bool = ScoreConfig.html) -> list[str]:
    """Score each hypothesis file per unit and write the reports into ``out_dir``.

    Per hypothesis file and unit: ``errs-STEM-UNIT.txt`` (summary, alignments, error tables),
    ``sys-STEM-UNIT.txt`` (sclite's tables by speaker, percentages then counts) and
    ``score-STEM-UNIT.json``; for all of them ``wer-summary.txt``, ``results.md`` (Markdown) and,
    with ``html``, ``report.html`` (plots). Phone folding applies to the ``phone`` unit only.

    Returns:
        ``"<hypstem> <summary line>"`` per (hyp, unit), best first within each unit.
    """
    stems = [system_name(p) for p in hyp_paths]
    dup = next((s for s in stems if stems.count(s) > 1), None)
    if dup is not None:
        raise ValueError(f"two hypothesis files share the name stem '{dup}'")
    normalizer = normalizer or Normalizer()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    refs = read_transcripts(ref_path)
    spk = read_utt2spk(utt2spk) if utt2spk is not None else None
    rows: list[tuple[str, ScoreResult]] = []
    for hyp_path, stem in zip(hyp_paths, stems):
        hyps = read_transcripts(hyp_path)
        for unit in units:
            norm = normalizer if unit == "phone" else replace(normalizer, fold=None)
            result = score(refs, hyps, unit, utt2spk=spk, normalizer=norm)
            name = f"{stem}-{unit}"
            write_report(result, out_dir / f"errs-{name}.txt")
            (out_dir / f"sys-{name}.txt").write_text(
                sys_table(result, stem) + "\n" + sys_table(result, stem, raw=True), encoding="utf-8")
            files = {"ref": str(ref_path), "hyp": str(hyp_path), "utt2spk": str(utt2spk) if utt2spk else ""}
            write_json(result_dict(result, stem, files), out_dir / f"score-{name}.json")
            rows.append((stem, result))
    rows.sort(key=lambda row: (units.index(row[1].unit), row[1].err_rate, row[0]))
    summary = "".join(f"{s}\t{r.summary_line()}\n" for s, r in rows)
    (out_dir / "wer-summary.txt").write_text(summary, encoding="utf-8")
    (out_dir / "results.md").write_text(markdown_table(rows), encoding="utf-8")
    if html:
        write_html(rows, out_dir / "report.html", f"Scoring report: {Path(ref_path).name}")
    log.info("wrote reports for %d (hypothesis, unit) pairs to %s", len(rows), out_dir)
    return [f"{s} {r.summary_line()}" for s, r in rows]
