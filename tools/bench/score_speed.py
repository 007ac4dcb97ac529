"""Scoring time of ``asr score`` against ``sctk sclite`` on the same trn files, and whether the counts agree.

Writes PAIRS reference/hypothesis pairs as sclite trn files (Zipf words over a VOCAB-word
vocabulary, 1-40 words, mean ~20 like LibriSpeech; about ERROR_RATE of the words substituted,
deleted or inserted; SPEAKERS speakers in the ids), then times, in the same run:

* ``asr`` counts: read both files, align every pair, per-speaker and overall counts;
* ``asr`` reports: ``score_files`` for the word unit (errs, sys, JSON, Markdown; ``--html`` adds the page);
* ``sclite -o sum``: its counts and summary table;
* ``sclite -o sum rsum pralign dtl``: with alignments and confusion tables.

Then compares sclite's per-speaker and overall counts (its ``rsum`` table) with ours. Wall and
CPU seconds are both printed; on a shared machine CPU seconds are the fairer comparison.

    python tools/bench/score_speed.py --pairs 100000
"""

from __future__ import annotations

import argparse
import logging
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from asr.scoring.report import score_files
from asr.scoring.score import read_transcripts, score

log = logging.getLogger("score_speed")


def write_pairs(ref: Path, hyp: Path, pairs: int, vocab: int, speakers: int, error_rate: float,
                seed: int = 0) -> int:
    """Write the two trn files; returns the number of reference words."""
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(vocab)], dtype=object)
    lens = rng.integers(1, 41, pairs)
    ids = np.minimum(rng.zipf(1.3, lens.sum()) - 1, vocab - 1)
    edit = rng.random(lens.sum())
    fillers = words[np.minimum(rng.zipf(1.3, lens.sum()) - 1, vocab - 1)]
    bounds = np.concatenate(([0], np.cumsum(lens)))
    with open(ref, "w") as fr, open(hyp, "w") as fh:
        for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
            uid = f"spk{k % speakers:04d}-utt{k:07d}"
            out = []
            for w, e, f in zip(words[ids[a:b]], edit[a:b], fillers[a:b]):
                if e < error_rate / 2:
                    out.append(f)
                elif e < error_rate * 3 / 4:
                    continue
                else:
                    out.append(w)
                if e > 1 - error_rate / 4:
                    out.append(f)
            fr.write(" ".join(words[ids[a:b]]) + f" ({uid})\n")
            fh.write(" ".join(out) + f" ({uid})\n")
    return int(lens.sum())


def sclite_counts(raw: Path) -> dict[str, list[int]]:
    """``speaker -> [Snt, Wrd, Corr, Sub, Del, Ins, Err, S.Err]`` (and ``Sum``) from sclite's rsum file."""
    out = {}
    for line in raw.read_text().splitlines():
        parts = line.strip().split("|")
        if len(parts) == 5 and parts[2].split() and parts[2].split()[0].isdigit():
            label = parts[1].strip()
            if label not in ("Mean", "S.D.", "Median"):
                out[label] = [int(float(x)) for x in parts[2].split() + parts[3].split()]
    return out


def _cpu() -> float:
    """CPU seconds (user + system) of this process and its finished children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(label: str, fn) -> tuple[float, object]:
    """Run ``fn``, log its wall and CPU seconds (CPU is the fair figure on a busy machine); returns CPU."""
    start, cpu = time.perf_counter(), _cpu()
    value = fn()
    wall, cpu = time.perf_counter() - start, _cpu() - cpu
    log.warning("%-34s wall %7.2f s   cpu %7.2f s", label, wall, cpu)
    return cpu, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--vocab", type=int, default=20_000)
    parser.add_argument("--speakers", type=int, default=1000)
    parser.add_argument("--error-rate", type=float, default=0.12)
    parser.add_argument("--html", action="store_true", help="also time report.html (matplotlib)")
    parser.add_argument("--work-dir", type=Path, default=None, help="default: a temporary directory")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    sctk = shutil.which("sctk")
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        ref, hyp = Path(tmp) / "ref.trn", Path(tmp) / "hyp.trn"
        n_words = write_pairs(ref, hyp, args.pairs, args.vocab, args.speakers, args.error_rate)
        log.warning("%d pairs, %d reference words, %d speakers", args.pairs, n_words, args.speakers)

        def ours_counts():
            result = score(read_transcripts(ref), read_transcripts(hyp))
            by_spk = {s: [r.num_sents, r.num_ref, r.corr, r.sub, r.dele, r.ins, r.errors, r.sent_errors]
                      for s, r in result.by_speaker().items()}
            by_spk["Sum"] = [result.num_sents, result.num_ref, result.corr, result.sub, result.dele, result.ins,
                             result.errors, result.sent_errors]
            return by_spk

        t_ours, ours = timed("asr: counts", ours_counts)
        t_rep, _ = timed("asr: reports" + (" + html" if args.html else ""),
                         lambda: score_files(ref, [hyp], Path(tmp) / "asr", ("word",), html=args.html))
        if sctk is None:
            log.warning("sctk not installed (apt-get install sctk): no sclite timing")
            return
        out = Path(tmp) / "sclite"
        out.mkdir()
        base = [sctk, "sclite", "-r", str(ref), "trn", "-h", str(hyp), "trn", "-i", "rm", "-s", "-O", str(out),
                "-f", "0"]
        t_sum, _ = timed("sclite -o sum", lambda: subprocess.run(base + ["-o", "sum"], check=True))
        t_all, _ = timed("sclite -o sum rsum pralign dtl", lambda: subprocess.run(
            base + ["-o", "sum", "rsum", "pralign", "dtl"], check=True))
        theirs = sclite_counts(out / "hyp.trn.raw")
        same = theirs == ours
        log.warning("counts identical (%d speakers + overall): %s; overall %s", len(theirs) - 1, same,
                    theirs.get("Sum"))
        log.warning("CPU-time speed-up: counts %.1fx (vs sclite -o sum), reports %.1fx (vs sclite with "
                    "alignments)", t_sum / t_ours, t_all / t_rep)


if __name__ == "__main__":
    main()
