"""Load test of ``asr serve``: N concurrent Vosk WebSocket clients replaying AN4 test audio in real time.

The server runs as ``asr serve`` in a subprocess on loopback; the clients run here, in one event
loop. Each client opens one connection, sends ``{"config": {"sample_rate": 16000}}``, then AN4
test files back to back (``--audio-s`` seconds in all) as 16-bit PCM in ``--chunk-ms`` chunks, each
sent when its audio would have been recorded (real time, as from a microphone; clients start at
random offsets within the first chunk), then ``{"eof": 1}``. A second task per client reads the
replies as they come.

Per N it reports:

* partial latency: for every word of every final result, from the end of the word's audio (its
  ``end`` time in the final result, i.e. the model's own alignment; AN4 has no word times) to the
  first reply (partial or result) of its segment showing that word at its position; median and p95;
* final latency: from sending ``{"eof": 1}`` to receiving the final result; median and p95;
* reply lag: from sending a chunk to receiving its reply; p95;
* server CPU: process CPU seconds (``/proc/PID/stat``) per wall second, i.e. cores used;
* real time: the server kept up, i.e. p95 reply lag and p95 final latency both under 1 s (a server
  that falls behind builds a backlog that grows with the replay, far past 1 s);
* ok: real time with p95 partial latency under 500 ms (the issue's goal).

Levels run in increasing N; the run stops after two failing levels. The reference for "real time"
is the audio clock of the same run, so the figures hold only for the machine load they ran under:
the script prints the 1-minute load average before and after each level.

The server batches the sessions' model steps (``ServerConfig.max_batch``, ``batch_wait_ms``;
pass them with ``--serve-args --max-batch 32 --batch-wait-ms 10``).

    nice -n 10 python tools/bench/stream_load.py --model exp/lcblstm/model.pt \\
        --clients 1 16 32 48 64 --out /tmp/stream_load.json
    # without a trained streaming model: a random model of --random-config (default
    # conf/an4_lcblstm.yaml; its partial-latency words are noise, its CPU cost is real)
    nice -n 10 python tools/bench/stream_load.py --random-model /tmp/lc.pt --clients 1 16 32 48 64

Measured figures: tools/bench/README.md (stream_profile.py and stream_load.py); with batching, a
random an4_lcblstm.yaml model kept 64 clients real time at 1.31 server cores (p95 reply lag 128 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[2]
AN4_TEST = Path(os.environ.get("ASR_TEST_DATA", "/work/shared/data")) / "an4" / "wav" / "an4test_clstk"
TICKS = os.sysconf("SC_CLK_TCK")


def _random_model(path: Path, config: Path) -> Path:
    """A randomly initialised model of ``config``'s size (its outputs are noise, its cost is real)."""
    import torch

    from asr.config import load_config
    from asr.data.tokenizer import CharTokenizer
    from asr.model.checkpoint import model_package, save_atomic
    from asr.model.ctc import CTCModel

    cfg = load_config(config)
    tokenizer = CharTokenizer(["<blk>", "|", *"ABCDEFGHIJKLMNOPQRSTUVWXYZ'"])
    torch.manual_seed(0)
    save_atomic(model_package(CTCModel(cfg.model, len(tokenizer.units)).eval(), tokenizer), path)
    return path


def _audio(seconds: float, seed: int) -> bytes:
    """AN4 test files in a random order, back to back, until ``seconds`` of 16 kHz PCM."""
    files = sorted(AN4_TEST.rglob("*.wav"))
    random.Random(seed).shuffle(files)
    parts, total = [], 0
    for path in files:
        wave, rate = sf.read(path, dtype="int16")
        assert rate == 16000, path
        parts.append(wave)
        total += len(wave)
        if total >= seconds * 16000:
            break
    return np.concatenate(parts).astype("<i2").tobytes()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


class Client:
    """One real-time replay; records what the measures need."""

    def __init__(self, uri: str, pcm: bytes, chunk_ms: float, delay: float):
        self.uri, self.pcm, self.delay = uri, pcm, delay
        self.chunk = int(16000 * chunk_ms / 1000) * 2  # bytes
        self.sent: list[float] = []  # wall time each chunk was sent (eof last)
        self.replies: list[tuple[float, dict]] = []  # (wall time, reply) in order
        self.t0 = 0.0  # wall time of audio time 0
        self.error: str | None = None  # why the replay broke off (the level then fails)

    async def run(self) -> None:
        try:
            await self._replay()
        except Exception as err:  # a refused or dropped connection: this level is not real time
            self.error = f"{type(err).__name__}: {err}"

    async def _replay(self) -> None:
        from websockets.asyncio.client import connect

        await asyncio.sleep(self.delay)
        # no keepalive pings: a server far behind answers them late, and its latency shows that anyway
        async with connect(self.uri, max_queue=None, ping_interval=None) as ws:
            await ws.send(json.dumps({"config": {"sample_rate": 16000}}))
            reader = asyncio.create_task(self._read(ws))
            self.t0 = time.perf_counter()
            for k, i in enumerate(range(0, len(self.pcm), self.chunk)):
                part = self.pcm[i : i + self.chunk]
                # the chunk is complete once its last sample has been "recorded"
                await asyncio.sleep(max(0.0, self.t0 + (i + len(part)) / 32000 - time.perf_counter()))
                await ws.send(part)
                self.sent.append(time.perf_counter())
            await ws.send('{"eof": 1}')
            self.sent.append(time.perf_counter())
            await reader

    async def _read(self, ws) -> None:
        expected = -(-len(self.pcm) // self.chunk) + 1  # one reply per chunk, one after eof
        while len(self.replies) < expected:
            message = await ws.recv()
            self.replies.append((time.perf_counter(), json.loads(message)))
            if "error" in self.replies[-1][1]:
                raise RuntimeError(f"server error: {self.replies[-1][1]['error']}")

    def reply_lags(self) -> list[float]:
        return [t - s for s, (t, _) in zip(self.sent[:-1], self.replies[:-1])]

    def final_latency(self) -> float:
        return self.replies[-1][0] - self.sent[-1]

    def partial_latencies(self) -> list[float]:
        """For each word of each final result: first reply of its segment showing it at its place, minus its end."""
        latencies, segment = [], []  # segment: (time, words) of the replies since the last result
        for t, reply in self.replies:
            if "partial" in reply:
                segment.append((t, reply["partial"].split()))
                continue
            segment.append((t, reply.get("text", "").split()))
            for j, word in enumerate(reply.get("result", [])):
                first = next(tr for tr, words in segment if len(words) > j and words[j] == word["word"])
                latencies.append(first - (self.t0 + word["end"]))
            segment = []
        return latencies


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _level(uri: str, pid: int, n: int, args) -> dict:
    rng = random.Random(n)
    clients = [Client(uri, _audio(args.audio_s, seed=1000 * n + i), args.chunk_ms, rng.uniform(0, args.chunk_ms / 1000))
               for i in range(n)]
    load = os.getloadavg()[0]
    cpu, wall = _cpu_seconds(pid), time.perf_counter()

    async def main():
        await asyncio.gather(*(c.run() for c in clients))

    asyncio.run(main())
    wall, cpu = time.perf_counter() - wall, _cpu_seconds(pid) - cpu
    failed = [c for c in clients if c.error]
    clients = [c for c in clients if not c.error]
    partial = [x for c in clients for x in c.partial_latencies()]
    final = [c.final_latency() for c in clients]
    lags = [x for c in clients for x in c.reply_lags()]
    row = dict(clients=n, failed=len(failed), first_error=failed[0].error if failed else None, audio_s=sum(len(c.pcm) for c in clients) / 32000, wall_s=wall, words=len(partial),
               partial_median_ms=1000 * _pct(partial, 50), partial_p95_ms=1000 * _pct(partial, 95),
               final_median_ms=1000 * _pct(final, 50), final_p95_ms=1000 * _pct(final, 95),
               reply_lag_p95_ms=1000 * _pct(lags, 95), server_cores=cpu / wall,
               load_before=load, load_after=os.getloadavg()[0])
    row["realtime"] = not failed and row["reply_lag_p95_ms"] < 1000 and row["final_p95_ms"] < 1000
    row["ok"] = row["realtime"] and row["partial_p95_ms"] < 500
    return row


def _start_server(model: Path, args) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "asr.cli", "serve", str(model), "--port", "0", "--max-sessions", "10000",
               "--workers", str(args.workers), "--method", args.method, *args.serve_args]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        if match := re.search(r"(ws://[^\s)]+) \(Vosk clients\)", line):
            threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()  # keep draining
            return process, match.group(1)
    raise RuntimeError(f"asr serve did not start (exit {process.wait()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="a streamable model (folder or file)")
    parser.add_argument("--random-model", type=Path, help="write a random model of --random-config here and use it")
    parser.add_argument("--random-config", type=Path, default=REPO / "conf" / "an4_lcblstm.yaml",
                        help="config of the random model")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 16, 32, 48, 64])
    parser.add_argument("--audio-s", type=float, default=30.0, help="seconds of audio each client replays")
    parser.add_argument("--chunk-ms", type=float, default=100.0, help="audio per binary message")
    parser.add_argument("--workers", type=int, default=2, help="asr serve --workers")
    parser.add_argument("--method", default="greedy", choices=["greedy", "beam", "beam-lm"])
    parser.add_argument("--serve-args", nargs=argparse.REMAINDER, default=[], help="more asr serve options (last)")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()
    if (args.model is None) == (args.random_model is None):
        parser.error("give --model or --random-model")
    model = args.model or _random_model(args.random_model, args.random_config)
    process, uri = _start_server(model, args)
    rows, failures = [], 0
    try:
        print(f"{'N':>4} {'audio s':>8} {'words':>6} {'partial med/p95 ms':>19} {'final med/p95 ms':>17} "
              f"{'lag p95':>8} {'cores':>6} {'load':>10}  realtime ok", flush=True)
        for n in args.clients:
            row = _level(uri, process.pid, n, args)
            rows.append(row)
            print(f"{n:>4} {row['audio_s']:>8.0f} {row['words']:>6} {row['partial_median_ms']:>9.0f}/"
                  f"{row['partial_p95_ms']:<9.0f} {row['final_median_ms']:>8.0f}/{row['final_p95_ms']:<8.0f} "
                  f"{row['reply_lag_p95_ms']:>8.0f} {row['server_cores']:>6.2f} {row['load_before']:>4.1f}/"
                  f"{row['load_after']:<4.1f}  {str(row['realtime']):>8} {row['ok']}", flush=True)
            failures += not row["ok"]
            if failures >= 2:
                break
    finally:
        process.terminate()
        process.wait(60)
    best = max((r["clients"] for r in rows if r["ok"]), default=0)
    print(f"largest N real time with p95 partial latency < 500 ms: {best} (of {[r['clients'] for r in rows]})")
    if args.out:
        args.out.write_text(json.dumps({"model": str(model), "chunk_ms": args.chunk_ms, "workers": args.workers,
                                        "method": args.method, "best": best, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
