"""Real-time factor and WER of ``asr transcribe`` against PocketSphinx on the AN4 test set, and
peak memory of ``asr transcribe`` on an hour of audio -- all in one run, one thread each.

Systems, each run as its own process over the 130 AN4 test files:

* ``asr transcribe --method greedy``
* ``asr transcribe --method beam-lm --lm-params P`` (a word n-gram + lexicon tuned by ``asr tune``)
* ``pocketsphinx_batch`` with the en-us acoustic model, AN4's dictionary and AN4's shipped LM
  (``etc/an4.lm.DMP``), and, when ``--lm-params`` is given, with the same n-gram as beam-lm.

RTF is wall time over audio time. "decode" excludes start-up: ``asr transcribe`` reports its wall
and CPU time after the model is loaded, PocketSphinx its ``TOTAL ... seconds CPU, ... seconds
wall`` after initialisation; "process" is the whole command, Python and torch imports included.
On a shared machine the CPU-time RTF is the steadier figure (one thread: CPU <= wall). Every process gets
``OMP_NUM_THREADS=1`` and ``asr transcribe`` also ``--threads 1``; PocketSphinx is single-threaded.

The long-audio run concatenates the test files (back to back, their own pauses only) until
``--long-hours`` of audio, writes one 16-bit WAV and transcribes it, reporting the peak resident
memory of the process (``ru_maxrss``), RTF, and the WER of the stitched transcript against the
concatenated references.

    apt-get install pocketsphinx pocketsphinx-en-us
    python tools/bench/transcribe_rtf.py --model exp/model.pt --an4-dir ../shared/data/an4 \\
        --lm-params exp/lm-params.yaml --work-dir /tmp/rtf
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from asr.data.corpora.an4 import parse_transcription
from asr.scoring.score import score

PS_MODEL = Path("/usr/share/pocketsphinx/model/en-us/en-us")


@dataclass
class Run:
    name: str
    hyps: dict[str, str]
    decode_seconds: float  # the tool's own wall time, start-up excluded
    cpu_seconds: float  # the tool's own CPU time over the same stretch
    process_seconds: float  # the whole process
    peak_rss_mb: float


def _measured(cmd: list[str]) -> tuple[str, str, float, float]:
    """Run ``cmd`` with one thread inside a fresh Python child, so that the child's ``RUSAGE_CHILDREN``
    peak is this command's alone. Returns stdout, stderr, wall seconds and peak RSS in MB."""
    probe = (
        "import json, resource, subprocess, sys, time\n"
        "cmd = json.loads(sys.argv[1])\n"
        "t = time.perf_counter()\n"
        "p = subprocess.run(cmd, capture_output=True, text=True)\n"
        "wall = time.perf_counter() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(json.dumps({'rc': p.returncode, 'out': p.stdout, 'err': p.stderr, 'wall': wall, 'rss': rss}))\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    probe_run = subprocess.run([sys.executable, "-c", probe, json.dumps(cmd)], capture_output=True, text=True,
                               env=env, check=True)
    result = json.loads(probe_run.stdout)
    if result["rc"] != 0:
        sys.exit(f"{' '.join(cmd)} failed ({result['rc']}):\n{result['err'][-3000:]}")
    return result["out"], result["err"], result["wall"], result["rss"]


def _asr() -> str:
    return shutil.which("asr") or str(Path(sys.executable).with_name("asr"))


def _asr_decode_seconds(stderr: str) -> tuple[float, float, float]:
    """(audio, wall, CPU) seconds from the summary line of ``asr transcribe``."""
    match = re.search(r"([\d.]+) s of audio .* in ([\d.]+) s \(([\d.]+) s CPU\), real-time factor", stderr)
    if match is None:
        sys.exit(f"no summary line in asr transcribe's stderr:\n{stderr[-2000:]}")
    return float(match[1]), float(match[2]), float(match[3])


def run_asr(name: str, model: Path, file_list: Path, extra: list[str]) -> Run:
    out, err, wall, rss = _measured([_asr(), "transcribe", str(model), "--list", str(file_list), "--threads", "1",
                                     "--no-progress", *extra])
    hyps = {}
    for line in out.splitlines():
        path, _, text = line.partition("\t")
        hyps[Path(path).stem] = text
    _, decode, cpu = _asr_decode_seconds(err)
    return Run(name, hyps, decode, cpu, wall, rss)


def run_pocketsphinx(name: str, an4: Path, fileids: Path, lm: Path, work: Path) -> Run:
    hyp, log = work / f"{name}.hyp", work / f"{name}.log"
    _, _, wall, rss = _measured([
        "pocketsphinx_batch", "-adcin", "yes", "-adchdr", "44", "-cepdir", str(an4 / "wav"), "-cepext", ".wav",
        "-ctl", str(fileids), "-hmm", str(PS_MODEL), "-dict", str(an4 / "etc" / "an4.dic"), "-lm", str(lm),
        "-hyp", str(hyp), "-logfn", str(log)])
    hyps = {}
    for line in hyp.read_text().splitlines():
        match = re.match(r"^(.*?)\s*\((\S+)(?:\s+-?\d+)?\)\s*$", line)
        if match:
            hyps[Path(match[2]).name] = " ".join(w for w in match[1].split() if not w.startswith("<"))
    totals = re.findall(r"TOTAL ([\d.]+) seconds speech, ([\d.]+) seconds CPU, ([\d.]+) seconds wall", log.read_text())
    if not totals:
        sys.exit(f"no TOTAL line in {log}")
    return Run(name, hyps, float(totals[-1][2]), float(totals[-1][1]), wall, rss)


def make_long_wav(wavs: list[Path], refs: list[str], hours: float, out: Path) -> tuple[float, str]:
    """Concatenate ``wavs`` (repeating) into one 16-bit WAV of at least ``hours``; returns (seconds, reference)."""
    target = hours * 3600 * 16000
    words, written = [], 0
    with sf.SoundFile(out, "w", samplerate=16000, channels=1, subtype="PCM_16") as f:
        while written < target:
            for wav, ref in zip(wavs, refs):
                data, rate = sf.read(wav, dtype="int16")
                assert rate == 16000
                f.write(data)
                written += len(data)
                words.append(ref)
                if written >= target:
                    break
    return written / 16000, " ".join(words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--an4-dir", type=Path, default=Path("../shared/data/an4"))
    parser.add_argument("--lm-params", type=Path, help="lm-params.yaml from 'asr tune' (lm, lexicon, weights)")
    parser.add_argument("--work-dir", type=Path, default=Path("rtf-bench"))
    parser.add_argument("--long-hours", type=float, default=1.0, help="0 skips the long-audio run")
    parser.add_argument("--no-pocketsphinx", action="store_true")
    args = parser.parse_args()

    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    etc = args.an4_dir / "etc"
    fileids = [line.strip() for line in (etc / "an4_test.fileids").read_text().splitlines() if line.strip()]
    refs = parse_transcription(etc / "an4_test.transcription")
    wavs = [args.an4_dir / "wav" / f"{f}.wav" for f in fileids]
    file_list = work / "test.lst"
    file_list.write_text("".join(f"{w}\n" for w in wavs))
    ctl = work / "test.ctl"
    ctl.write_text("".join(f"{f}\n" for f in fileids))
    audio = sum(sf.info(str(w)).duration for w in wavs)

    runs = [run_asr("asr greedy", args.model, file_list, [])]
    if args.lm_params is not None:
        runs.append(run_asr("asr beam-lm", args.model, file_list, ["--method", "beam-lm", "--lm-params",
                                                                   str(args.lm_params)]))
    if not args.no_pocketsphinx:
        runs.append(run_pocketsphinx("pocketsphinx an4.lm", args.an4_dir, ctl, etc / "an4.lm.DMP", work))
        if args.lm_params is not None:
            lm = Path(yaml.safe_load(args.lm_params.read_text())["lm"])
            runs.append(run_pocketsphinx("pocketsphinx 3-gram", args.an4_dir, ctl, lm, work))

    ids = {Path(f).name for f in fileids}
    lines = [f"AN4 test: {len(wavs)} files, {audio:.1f} s of audio; one thread each",
             "", "| system | WER | decode wall s | RTF | decode CPU s | RTF (CPU) | process s | RTF (process) "
             "| peak RSS MB |", "|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        result = score({i: refs[i] for i in ids}, {i: run.hyps.get(i, "") for i in ids})
        lines.append(f"| {run.name} | {result.summary_line()} | {run.decode_seconds:.2f} | "
                     f"{run.decode_seconds / audio:.4f} | {run.cpu_seconds:.2f} | {run.cpu_seconds / audio:.4f} | "
                     f"{run.process_seconds:.2f} | "
                     f"{run.process_seconds / audio:.4f} | {run.peak_rss_mb:.0f} |")

    if args.long_hours > 0:
        long_wav = work / "long.wav"
        seconds, reference = make_long_wav(wavs, [refs[Path(f).name] for f in fileids], args.long_hours, long_wav)
        out, err, wall, rss = _measured([_asr(), "transcribe", str(args.model), str(long_wav), "--threads", "1",
                                         "--no-progress", "-f", "txt", "json", "-o", str(work / "long")])
        _, decode, cpu = _asr_decode_seconds(err)
        text = (work / "long" / "long.txt").read_text().strip()
        result = score({"long": reference}, {"long": text})
        _, _, _, rss_short = _measured([_asr(), "transcribe", str(args.model), str(wavs[0]), "--threads", "1",
                                        "--no-progress"])
        segments = json.loads((work / "long" / "long.json").read_text())["segments"]
        lengths = np.array([s["end"] - s["start"] for s in segments])
        lines += ["", f"Long audio: {seconds / 3600:.2f} h WAV ({long_wav.stat().st_size / 2**20:.0f} MB) -> "
                  f"{len(segments)} segments (median {np.median(lengths):.1f} s, max {lengths.max():.1f} s)",
                  f"asr greedy: {result.summary_line()}, decode {decode:.1f} s (RTF {decode / seconds:.4f}; "
                  f"CPU {cpu:.1f} s, RTF {cpu / seconds:.4f}), "
                  f"process {wall:.1f} s, peak RSS {rss:.0f} MB (one 4 s file: {rss_short:.0f} MB)"]
    report = "\n".join(lines)
    (work / "results.md").write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
