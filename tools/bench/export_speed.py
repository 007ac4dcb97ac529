"""Size, load time, speed and WER of one model in every shipping format, in one run.

Formats: eager float32 (safetensors model folder), TorchScript (``asr export``), ONNX float32
(``asr export --format onnx``), PyTorch int8 (``asr package --int8``: int8 safetensors, quantized
at load) and ONNX int8 (``--format onnx --int8``, onnxruntime's dynamic quantization), each at
1 and 2 threads (``torch.set_num_threads``; ONNX Runtime's intra-op threads).

RTF = (log-mel features + acoustic model + greedy search) time / audio time over the test cuts,
one utterance per call (the audio is read beforehand; file I/O excluded); both wall and process
CPU time are reported (on a shared machine the one-thread CPU RTF is the steadier figure). Load
time: median of 3 loads of the file/folder. Size: the weights file on disk. WER: greedy, and the
lexicon + n-gram beam search with the tuned ``lm-params.yaml`` (``--lm-params``), on the
log-probabilities of the one-thread pass. Ratios are against eager float32 measured in the same run.
The outside anchor is PocketSphinx on AN4 test, measured earlier (MEASURED.md: WER 22.6, RTF 0.042,
one core), not in this run.

    nice -n 10 python tools/bench/export_speed.py --model recipes/an4/exp/model.pt \\
        --cuts recipes/an4/data/manifests/an4_cuts_test.jsonl.gz --lm-params recipes/an4/exp/lm-params.yaml \\
        --work-dir /tmp/export_speed --out /tmp/export_speed/results.json
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import torch

from asr.audio.features import LogMel
from asr.data.cuts import cut_audio, cut_text, load_cuts
from asr.decoding.search import BeamSearch, greedy_search
from asr.decoding.resolve import make_search
from asr.inference.export import export_model
from asr.inference.package import package_model
from asr.model.files import load_acoustic_model
from asr.scoring.score import score

POCKETSPHINX = {"wer": 22.6, "rtf": 0.042}  # MEASURED.md: PocketSphinx 0.8 on AN4 test, one core


class _TorchScript:
    """A TorchScript export with the (feats, feat_lens) call and ``.cfg`` of the other formats."""

    def __init__(self, path: Path, cfg):
        self.module, self.cfg = torch.jit.load(str(path)), cfg

    def __call__(self, feats, lens):
        return self.module(feats, lens)


def _formats(model: Path, work: Path) -> dict[str, tuple[Path, Path]]:
    """Format name -> (what to load, the weights file whose size counts)."""
    work.mkdir(parents=True, exist_ok=True)
    package_model(model, work / "eager", lm_params=None)
    package_model(model, work / "int8", int8=True)
    export_model(model, work / "model.ts")
    export_model(model, work / "model.onnx", "onnx")
    export_model(model, work / "model-int8.onnx", "onnx", int8=True)
    return {
        "eager fp32": (work / "eager", work / "eager" / "model.safetensors"),
        "TorchScript": (work / "model.ts", work / "model.ts"),
        "ONNX fp32": (work / "model.onnx", work / "model.onnx"),
        "PyTorch int8": (work / "int8", work / "int8" / "model.safetensors"),
        "ONNX int8": (work / "model-int8.onnx", work / "model-int8.onnx"),
    }


def _load(path: Path, cfg):
    if path.suffix == ".ts":
        return _TorchScript(path, cfg)
    return load_acoustic_model(path)[0]


@torch.inference_mode()
def _run(model, tokenizer, waves: list[torch.Tensor], logmel: LogMel) -> tuple[float, float, list, list[str]]:
    """(wall s, CPU s, per-utterance log-probs, greedy texts) over ``waves``, one utterance per call."""
    outputs, texts = [], []
    wall, cpu = time.perf_counter(), time.process_time()
    for wave in waves:
        feats = logmel(wave)[None]  # (1, T, F)
        log_probs, lens = model(feats, torch.tensor([feats.size(1)]))
        texts.append(greedy_search(log_probs, lens, tokenizer)[0].text)
        outputs.append(log_probs[0, : int(lens[0])].clone())
    return time.perf_counter() - wall, time.process_time() - cpu, outputs, texts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="float model file (.pt)")
    parser.add_argument("--cuts", type=Path, required=True, help="test cut manifest")
    parser.add_argument("--lm-params", type=Path, help="tuned beam-lm options (lm-params.yaml from 'asr tune')")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--limit", type=int, default=0, help="first N cuts only (0: all)")
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, help="JSON results")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    cuts = load_cuts(args.cuts)  # bad input fails before the exports
    cuts = list(cuts.subset(first=args.limit) if args.limit else cuts)
    reference_model, tokenizer, _ = load_acoustic_model(args.model)
    cfg = reference_model.cfg
    formats = _formats(args.model, args.work_dir)
    waves = [cut_audio(c, cfg.features.sample_rate) for c in cuts]
    refs = {c.id: cut_text(c) for c in cuts}
    audio_s = sum(len(w) for w in waves) / cfg.features.sample_rate
    logmel = LogMel(cfg.features)
    search = None
    if args.lm_params is not None:
        search = make_search(tokenizer, "beam-lm", {}, args.lm_params)

    rows = []
    for name, (path, weights) in formats.items():
        loads = []
        for _ in range(3):
            start = time.perf_counter()
            _load(path, cfg)
            loads.append(time.perf_counter() - start)
        row = {"format": name, "size_mb": weights.stat().st_size / 1e6, "load_s": statistics.median(loads)}
        for threads in args.threads:
            torch.set_num_threads(threads)
            model = _load(path, cfg)  # ONNX Runtime takes its thread count at session creation
            _run(model, tokenizer, waves[:3], logmel)  # warm-up
            wall, cpu, outputs, texts = _run(model, tokenizer, waves, logmel)
            row[f"rtf_{threads}t"], row[f"cpu_rtf_{threads}t"] = wall / audio_s, cpu / audio_s
            if threads == args.threads[0]:
                hyps = dict(zip(refs, texts))
                row["wer_greedy"] = score(refs, hyps).err_rate
                if search is not None:
                    beam = [search(lp[None], torch.tensor([lp.size(0)]))[0].text for lp in outputs]
                    row["wer_beam_lm"] = score(refs, dict(zip(refs, beam))).err_rate
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)

    base = rows[0]
    t = args.threads
    header = (["format", "size MB", "size ×", "load s"] + [f"RTF {n}t" for n in t] + [f"CPU RTF {t[0]}t", "RTF ×",
              "greedy WER"] + (["beam+LM WER"] if search else []))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [row["format"], f"{row['size_mb']:.2f}", f"{row['size_mb'] / base['size_mb']:.2f}",
                 f"{row['load_s']:.3f}"] + [f"{row[f'rtf_{n}t']:.4f}" for n in t] + [
                 f"{row[f'cpu_rtf_{t[0]}t']:.4f}", f"{row[f'rtf_{t[0]}t'] / base[f'rtf_{t[0]}t']:.2f}",
                 f"{row['wer_greedy']:.2f}"] + ([f"{row['wer_beam_lm']:.2f}"] if search else [])
        lines.append("| " + " | ".join(cells) + " |")
    anchor = ["PocketSphinx (MEASURED.md)", "", "", ""] + [f"{POCKETSPHINX['rtf']}" if n == 1 else "" for n in t] + [
        "", "", f"{POCKETSPHINX['wer']}"] + ([""] if search else [])
    lines.append("| " + " | ".join(anchor) + " |")
    print(f"{len(cuts)} utterances, {audio_s:.1f} s of audio; RTF × = RTF at {t[0]} thread(s) / eager fp32's")
    print("\n".join(lines))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"audio_s": audio_s, "utterances": len(cuts), "rows": rows,
                                        "pocketsphinx": POCKETSPHINX}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
