"""Peak memory of `asr train` on long utterances (35 s by default) built from real AN4 speech.

AN4 training utterances are concatenated (with their transcripts) into ``--count`` WAV files of
``--seconds`` each, in a temporary directory; `asr train` then runs the AN4 config on them for
``--epochs`` epochs with ``--max-duration`` seconds of audio per batch, in a child process, and
the peak resident set of that process is read from the training log (``max_rss_mb`` of
log.csv) and from the kernel's accounting of the finished child (``wait4``'s ``ru_maxrss``).

    python tools/bench/long_utterances.py                  # 12 x 35 s, 2 epochs: about 1 min here
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from lhotse import CutSet, MonoCut, Recording, SupervisionSegment

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import REPO, default_data_dir  # noqa: E402

from asr.data.corpora.an4 import parse_transcription  # noqa: E402


def long_utterances(an4: Path, out: Path, count: int, seconds: float) -> Path:
    """``count`` WAVs of about ``seconds`` s each, from consecutive AN4 training utterances; a cut manifest."""
    texts = parse_transcription(an4 / "etc" / "an4_train.transcription")
    fileids = (an4 / "etc" / "an4_train.fileids").read_text().split()
    cuts, source = [], iter(fileids)
    for n in range(count):
        audio, words = [], []
        while sum(len(a) for a in audio) < seconds * 16000:
            fileid = next(source)
            audio.append(sf.read(an4 / "wav" / f"{fileid}.wav", dtype="float32")[0])
            words.append(texts[Path(fileid).name])
        samples = np.concatenate(audio)[: int(seconds * 16000)]
        path = out / f"long{n:03d}.wav"
        sf.write(path, samples, 16000)
        recording = Recording.from_file(path)
        cuts.append(MonoCut(recording.id, 0.0, recording.duration, 0, recording=recording, supervisions=[
            SupervisionSegment(recording.id, recording.id, 0.0, recording.duration, text=" ".join(words))]))
    manifest = out / "cuts.jsonl.gz"
    CutSet.from_cuts(cuts).to_file(manifest)
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--config", default=str(REPO / "conf" / "an4.yaml"))
    parser.add_argument("--count", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=35.0)
    parser.add_argument("--max-duration", type=float, default=120.0, help="seconds of audio per batch")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = long_utterances(args.data_dir, Path(tmp), args.count, args.seconds)
        command = [sys.executable, "-m", "asr.cli", "train", "--config", args.config, "--train", str(manifest),
                   "--dev", str(manifest), "--exp-dir", f"{tmp}/exp", f"epochs={args.epochs}",
                   f"data.max_duration={args.max_duration}", "data.num_buckets=2", f"data.max_utt_duration={args.seconds + 1}",
                   f"num_threads={args.threads}"]
        start = time.time()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(process.pid, 0)
        stderr = process.stderr.read()
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit(f"asr train failed:\n{stderr[-2000:]}")
        with open(Path(tmp) / "exp" / "log.csv") as f:
            rows = list(csv.DictReader(f))
    print(f"# {args.count} utterances of {args.seconds:g} s (AN4 speech), {args.config}, max_duration "
          f"{args.max_duration:g} s, {args.epochs} epochs, {time.time() - start:.0f} s; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"epochs: {', '.join(r['audio_s_per_s'] + ' audio-s/s' for r in rows)}; "
          f"skipped utts {sum(int(r['skipped_utts']) for r in rows)}, oom batches "
          f"{sum(int(r['oom_batches']) for r in rows)}")
    print(f"peak RSS of asr train: {usage.ru_maxrss / 1024:.0f} MiB "
          f"(log.csv max_rss_mb {max(int(r['max_rss_mb']) for r in rows)})")


if __name__ == "__main__":
    main()
