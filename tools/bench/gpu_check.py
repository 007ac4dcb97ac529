"""GPU check for a machine with one NVIDIA GPU: one table, under 8 minutes (AN4, conf/an4.yaml).

NOT YET RUN: no GPU was available to this project when it was written (see
recipes/librispeech/RESULTS.md). Without a CUDA device it stops at once with one line and exit
status 2. Rows:

  step fp32/bf16/fp16   the toolkit's training step (``asr.training.loop._train_step``) against the
                        bare cuDNN ``nn.LSTM`` + ``F.ctc_loss`` loop of tools/bench/train_throughput.py
                        on the same AN4 batches (features precomputed), audio-s/s and the ratio;
                        peak CUDA memory of the toolkit's step
  loader                audio-s/s the training loader delivers (``--workers`` processes, log-mel on
                        the GPU) against the fp32 step's: >= 1 keeps the GPU fed
  train fp32/bf16       ``asr train`` for ``--epochs`` epochs, then greedy WER on AN4 test (on the GPU);
                        the two must agree within 1 point
  torchrun ws=1         one epoch of ``asr train`` under ``torchrun --nproc-per-node 1`` (NCCL)
  decode greedy/beam    the fp32 model's log-probs computed on the GPU, decoded greedily and by beam
                        search (CPU, as always), against the same on the CPU: identical transcripts
  asr transcribe        the inference path has no device option yet: runs on the CPU, reported so

    python tools/bench/gpu_check.py                    # about 5-7 minutes on one recent GPU (estimate)
    python tools/bench/gpu_check.py --epochs 10 --workers 8
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import train_throughput as tt  # noqa: E402  (the bare loop and batch preparation, reused)

from asr.config import load_config  # noqa: E402
from asr.data.corpora.an4 import prepare_an4  # noqa: E402
from asr.data.cuts import FeatureBatcher, eval_batches, load_cuts, load_cuts_lazy, train_loader, train_sampler  # noqa: E402
from asr.decoding.search import greedy_search  # noqa: E402
from asr.model.checkpoint import load_model  # noqa: E402
from asr.training.distributed import Dist  # noqa: E402
from asr.training.loop import _train_step, autocast, evaluate  # noqa: E402

REPO = tt.REPO
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def require_gpu() -> None:
    """Exit with one line and status 2 unless torch sees a CUDA device."""
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible to torch (torch.cuda.is_available() is False); "
              "this check needs one NVIDIA GPU", file=sys.stderr)
        sys.exit(2)


def step_rows(cfg, work, tokenizer, repeats: int) -> tuple[list[tuple[str, str, str]], float]:
    """Toolkit step vs bare loop in fp32, bf16, fp16 on the same batches (on cuda); the fp32 step's audio-s/s."""
    rows, audio, speeds = [], sum(w.audio_s for w in work), {}
    cmvn = tt.cmvn_stats(work)
    work = tt.to_device(work, "cuda")
    for precision in ("fp32", "bf16", "fp16"):
        pcfg = load_config(None, [f"precision={precision}"])
        pcfg.model, pcfg.data, pcfg.optim = cfg.model, cfg.data, cfg.optim
        model, optimizer, scheduler = tt.build_toolkit(pcfg, len(tokenizer.units), cmvn, "cuda")
        scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
        bare, bare_opt = tt.build_bare(pcfg, len(tokenizer.units), "cuda")
        bare_scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None

        def toolkit(w, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, pcfg=pcfg):
            batch = tt.Batch(ids=[""] * len(w.texts), texts=w.texts, feats=w.feats, feat_lens=w.feat_lens,
                             durations=torch.tensor([w.audio_s]))
            _train_step(model, model, batch, tokenizer, optimizer, scaler, pcfg, w.feats.device, Dist(), False)
            scheduler.step()

        def bare_step(w, bare=bare, optimizer=bare_opt, scaler=bare_scaler, precision=precision):
            with autocast(torch.device("cuda"), precision):
                log_probs = bare(w.stacked)
            loss = torch.nn.functional.ctc_loss(log_probs.float().transpose(0, 1), w.flat_targets, w.stacked_lens,
                                                w.target_lens, blank=0, reduction="sum", zero_infinity=True)
            optimizer.zero_grad(set_to_none=True)
            scaled = loss / w.stacked.size(0)
            if scaler is None:
                scaled.backward()
                optimizer.step()
            else:
                scaler.scale(scaled).backward()
                scaler.step(optimizer)
                scaler.update()

        torch.cuda.reset_peak_memory_stats()
        times = tt.time_interleaved({"toolkit": toolkit, "bare": bare_step}, work, repeats, "cuda")
        peak = torch.cuda.max_memory_allocated() / 2**20
        walls = {name: [w for w, _ in runs] for name, runs in times.items()}
        ratio = tt.median_ratio(walls["toolkit"], walls["bare"])
        speeds[precision] = audio / statistics.median(walls["toolkit"])
        rows.append((f"step {precision}",
                     f"toolkit {audio / statistics.median(walls['toolkit']):.0f}, bare "
                     f"{audio / statistics.median(walls['bare']):.0f} audio-s/s; peak {peak:.0f} MiB",
                     f"ratio {ratio:.2f} ({'ok' if ratio >= 0.9 else 'below 0.9'})"))
    return rows, speeds["fp32"]


def loader_row(train_path: Path, cfg, workers: int, step_speed: float, batches: int) -> tuple[str, str, str]:
    """Audio-s/s of the training loader with log-mel on the GPU."""
    batcher = FeatureBatcher(cfg.model.features)
    loader = train_loader(train_sampler(load_cuts_lazy(train_path), cfg.data, 0), 16000, workers, True)
    device = torch.device("cuda")
    audio, started = 0.0, None
    for i, item in enumerate(loader):
        if i == 1:  # the first batch pays for the workers' start
            torch.cuda.synchronize()
            started = time.perf_counter()
        if i >= 1:
            audio += float(item.durations.sum())
        batcher.from_audio(item, device)
        if i == batches:
            break
    torch.cuda.synchronize()
    speed = audio / (time.perf_counter() - started)
    return (f"loader ({workers} workers)", f"{speed:.0f} audio-s/s against the fp32 step's {step_speed:.0f}",
            f"{'fed' if speed >= step_speed else 'NOT fed'} ({speed / step_speed:.2f}x)")


def asr_train(args: list[str], exp: Path, torchrun: bool = False) -> None:
    cmd = [sys.executable, "-m", "asr.cli", "train"]
    if torchrun:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1", "-m", "asr.cli",
               "train"]
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    done = subprocess.run([*cmd, *args, "--exp-dir", str(exp)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"asr train failed:\n{done.stderr[-3000:]}")


def training_rows(an4: Path, epochs: int, tmp: Path) -> tuple[list, Path]:
    """AN4 training in fp32 and bf16, greedy test WER of each on the GPU; one torchrun epoch."""
    common = ["--train", str(an4 / "an4_cuts_train.jsonl.gz"), "--dev", str(an4 / "an4_cuts_dev.jsonl.gz"),
              "--config", str(REPO / "conf" / "an4.yaml"), f"epochs={epochs}", "device=cuda"]
    test = load_cuts(an4 / "an4_cuts_test.jsonl.gz")
    wers, rows = {}, []
    for precision in ("fp32", "bf16"):
        started = time.time()
        asr_train([*common, f"precision={precision}"], tmp / precision)
        seconds = time.time() - started
        model, tokenizer = load_model(sorted((tmp / precision / "checkpoints").glob("epoch-*.pt"))[-1])
        model.cuda()
        wers[precision] = evaluate(model, tokenizer, test, FeatureBatcher(model.cfg.features), torch.device("cuda"),
                                   precision)["wer"]
        rows.append((f"train {precision}", f"{epochs} epochs in {seconds:.0f} s; test WER greedy {wers[precision]:.2f}",
                     ""))
    gap = abs(wers["fp32"] - wers["bf16"])
    rows.append(("bf16 vs fp32 WER", f"{gap:.2f} points apart", "ok" if gap <= 1.0 else "MORE than 1 point"))
    started = time.time()
    asr_train([*common[:-2], "epochs=1", "device=cuda"], tmp / "torchrun", torchrun=True)
    rows.append(("torchrun ws=1", f"1 epoch in {time.time() - started:.0f} s", "ok"))
    return rows, sorted((tmp / "fp32" / "checkpoints").glob("epoch-*.pt"))[-1]


def decode_rows(model_path: Path, an4: Path) -> list:
    """Greedy and beam transcripts from GPU log-probs equal those from CPU log-probs."""
    from asr.decoding.search import BeamSearch

    model, tokenizer = load_model(model_path)
    model.eval()
    batcher = FeatureBatcher(model.cfg.features)
    cuts = load_cuts(an4 / "an4_cuts_test.jsonl.gz")
    beam = BeamSearch(tokenizer, beam_size=16)
    same = {"greedy": 0, "beam": 0}
    total = 0
    for batch_cuts in eval_batches(cuts, 200.0):
        batch = batcher(batch_cuts)
        outs = {}
        for device in ("cpu", "cuda"):
            model.to(device)
            with torch.no_grad():
                log_probs, lens = model(batch.feats.to(device), batch.feat_lens.to(device))
            log_probs, lens = log_probs.float().cpu(), lens.cpu()
            outs[device] = ([h.text for h in greedy_search(log_probs, lens, tokenizer)],
                            [h.text for h in beam(log_probs, lens)])
        total += len(batch.ids)
        same["greedy"] += sum(a == b for a, b in zip(outs["cpu"][0], outs["cuda"][0]))
        same["beam"] += sum(a == b for a, b in zip(outs["cpu"][1], outs["cuda"][1]))
    return [(f"decode {m} (GPU model)", f"{same[m]}/{total} transcripts equal to the CPU's",
             "ok" if same[m] == total else "DIFFERENT") for m in ("greedy", "beam")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=tt.default_data_dir(), help="AN4 directory")
    parser.add_argument("--epochs", type=int, default=15, help="epochs of each AN4 training")
    parser.add_argument("--workers", type=int, default=4, help="loader workers")
    parser.add_argument("--batches", type=int, default=20, help="batches for the step and loader rows")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats of the step timing")
    args = parser.parse_args()
    require_gpu()
    started = time.time()
    cfg = load_config(REPO / "conf" / "an4.yaml")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prepare_an4(args.data_dir, tmp / "an4")
        batches, tokenizer, _ = tt.load_batches(cfg, args.data_dir, args.batches)
        work = tt.prepare_work(batches, tokenizer, cfg.model.subsampling.factor, cfg.model.features.num_mels)
        step, step_speed = step_rows(cfg, work, tokenizer, args.repeats)
        rows += step
        rows.append(loader_row(tmp / "an4" / "an4_cuts_train.jsonl.gz", cfg, args.workers, step_speed, args.batches))
        train_rows, model_path = training_rows(tmp / "an4", args.epochs, tmp)
        rows += train_rows
        rows += decode_rows(model_path, tmp / "an4")
    rows.append(("asr transcribe", "no --device option in asr.inference yet: runs on the CPU", "not checked"))
    print(f"# gpu_check: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, "
          f"{time.time() - started:.0f} s in all")
    width = max(len(r[0]) for r in rows)
    for name, figure, verdict in rows:
        print(f"{name:{width}}  {figure:70}  {verdict}")


if __name__ == "__main__":
    main()
