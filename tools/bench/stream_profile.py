"""Where a streaming step's time goes, and what batching the streams' model steps saves.

N ``Stream``s (one per AN4 test file chain, greedy search, the server's default endpointing) are
fed ``--block-ms`` blocks in lock step, as ``asr serve`` feeds its sessions, twice over the same
audio: ``alone`` (every stream's ``accept_waveform`` in turn: one encoder forward per stream) and
``batched`` (one ``accept_waveforms`` call for all N per block: one encoder forward per group of
equal input shape). After each block every stream's ``partial()`` is taken and a Vosk reply
encoded with ``json.dumps``, as the server does. Torch runs on one thread, as in ``asr serve``.

Per stage it prints the CPU time of the calling thread (``time.thread_time``, so other jobs on
the machine inflate it less than wall time) in milliseconds per second of audio per stream, and
each stage's share of a step. 1000 ms/s per stream would be one core per stream; the
reciprocal of the total is the number of streams one core keeps in real time, for the model
step and search only (the WebSocket layer and the event loop come on top: ``stream_load.py``).

    nice -n 10 python tools/bench/stream_profile.py --streams 16 --seconds 10
    nice -n 10 python tools/bench/stream_profile.py --model exp/lcblstm/model.pt --streams 32
"""

from __future__ import annotations

import argparse
import json
import os
import string
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[2]
AN4_TEST = Path(os.environ.get("ASR_TEST_DATA", "/work/shared/data")) / "an4" / "wav" / "an4test_clstk"

# stage name: (module, owner, attribute) of the function timed (inclusive of what it calls)
STAGES = {
    "log-mel": ("asr.audio.features", "LogMel", "forward"),
    "CMVN": ("asr.audio.features", "GlobalCMVN", "forward"),
    "subsampling": ("asr.model.subsampling", "SubsamplingStream", "step"),
    "encoder": ("asr.model.encoder", "EncoderStream", "step_batch"),
    "model step": ("asr.inference.stream", "ModelStream", "step_batch"),
    "search + endpointing": ("asr.inference.stream", "Stream", "_accept_log_probs"),
    "partial text": ("asr.inference.stream", "Stream", "partial"),
}


@contextmanager
def _timed(totals: Counter):
    """Wrap every STAGES function so that its thread CPU time adds up in ``totals``."""
    import importlib

    saved = []
    for name, (module, owner, attr) in STAGES.items():
        cls = getattr(importlib.import_module(module), owner)
        raw = cls.__dict__[attr]
        func = raw.__func__ if isinstance(raw, staticmethod) else raw

        def timed(*args, _func=func, _name=name, **kwargs):
            start = time.thread_time()
            try:
                return _func(*args, **kwargs)
            finally:
                totals[_name] += time.thread_time() - start

        setattr(cls, attr, staticmethod(timed) if isinstance(raw, staticmethod) else timed)
        saved.append((cls, attr, raw))
    try:
        yield
    finally:
        for cls, attr, raw in saved:
            setattr(cls, attr, raw)


def _model(path: Path | None, config: Path):
    from asr.config import load_config
    from asr.data.tokenizer import CharTokenizer
    from asr.inference.recognizer import load_pretrained
    from asr.model.ctc import CTCModel

    if path is not None:
        loaded = load_pretrained(path, "greedy", None, {}, "cpu")
        return loaded.model, loaded.tokenizer
    tokenizer = CharTokenizer(["<blk>", "|", *string.ascii_uppercase, "'"])
    torch.manual_seed(0)
    return CTCModel(load_config(config).model, len(tokenizer.units)).eval(), tokenizer


def _audio(streams: int, seconds: float) -> list[np.ndarray]:
    """Per stream, AN4 test files back to back (each stream starting at another file) up to ``seconds``."""
    files = sorted(AN4_TEST.rglob("*.wav"))
    waves = []
    for i in range(streams):
        parts, total, k = [], 0, i
        while total < seconds * 16000:
            wave, _ = sf.read(files[k % len(files)], dtype="int16")
            parts.append(wave)
            total += len(wave)
            k += 7
        waves.append(np.concatenate(parts)[: int(seconds * 16000)])
    return waves


def _run(model, tokenizer, waves: list[np.ndarray], block: int, batched: bool) -> tuple[Counter, float]:
    from asr.inference.stream import Stream, accept_waveforms

    streams = [Stream(model, tokenizer) for _ in waves]
    totals: Counter = Counter()
    with _timed(totals):
        start = time.thread_time()
        for t in range(0, len(waves[0]), block):
            blocks = [wave[t : t + block] for wave in waves]
            if batched:
                outcomes = accept_waveforms(streams, blocks, [16000] * len(streams))
            else:
                outcomes = [stream.accept_waveform(b, 16000) for stream, b in zip(streams, blocks)]
            for stream, ended in zip(streams, outcomes):
                begin = time.thread_time()
                reply = {"text": " ".join(r.text for r in stream.result())} if ended else {"partial": stream.partial()}
                json.dumps(reply)
                totals["reply (results, JSON)"] += time.thread_time() - begin
        total = time.thread_time() - start
    return totals, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="a streamable model (default: a random one of --config)")
    parser.add_argument("--config", type=Path, default=REPO / "conf" / "an4_lcblstm.yaml",
                        help="config of the random model")
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0, help="audio per stream")
    parser.add_argument("--block-ms", type=float, default=100.0, help="audio per step, as a client's message")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, tokenizer = _model(args.model, args.config)
    waves = _audio(args.streams, args.seconds)
    block = int(16000 * args.block_ms / 1000)
    audio = args.streams * args.seconds
    _run(model, tokenizer, [w[: 16000] for w in waves[:2]], block, batched=True)  # warm-up
    results = {mode: _run(model, tokenizer, waves, block, mode == "batched") for mode in ("alone", "batched")}
    print(f"{args.streams} streams x {args.seconds:g} s of AN4 audio in {args.block_ms:g} ms blocks; "
          f"{'model ' + str(args.model) if args.model else 'random model of ' + args.config.name}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'stage':<24} {'alone ms/s':>11} {'share':>6} {'batched ms/s':>13} {'share':>6}")
    rows = {}
    for mode, (totals, total) in results.items():
        totals = Counter(totals)
        inner = totals["CMVN"] + totals["subsampling"] + totals["encoder"]
        totals["output layer, glue"] = totals.pop("model step") - inner  # the step's own time beyond its stages
        totals["other (audio in, loop)"] = total - sum(v for k, v in totals.items())
        totals["total"] = total
        rows[mode] = totals
    for stage in [*(s for s in STAGES if s != "model step"), "output layer, glue", "reply (results, JSON)",
                  "other (audio in, loop)", "total"]:
        cells = [f"{1000 * rows[m][stage] / audio:>11.2f} {100 * rows[m][stage] / rows[m]['total']:>5.1f}%"
                 for m in ("alone", "batched")]
        print(f"{stage:<24} {cells[0]} {cells[1]:>20}")
    ratio = rows["alone"]["total"] / rows["batched"]["total"]
    print(f"streams per core (model step + search): alone {audio / rows['alone']['total']:.0f}, "
          f"batched {audio / rows['batched']['total']:.0f}; batched is {ratio:.2f}x cheaper")


if __name__ == "__main__":
    main()
