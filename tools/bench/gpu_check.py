"""GPU check for a machine with one NVIDIA GPU (two for the NCCL row): one table, under 10 minutes (AN4, conf/an4.yaml).

NOT YET RUN: no GPU was available to this project when it was written (see
recipes/librispeech/RESULTS.md). Without a CUDA device it says so in one line and exits with
status 0, having checked nothing. Each CUDA-only branch of the toolkit has a row:

  rnn dtype bf16        the output dtype of a bare ``nn.LSTM`` (torch's autocast wrapper casts cuDNN RNNs
                        to fp16 whatever the autocast dtype) and of the toolkit's encoder layers (explicit
                        casts: must be bf16) under bf16 autocast
  bidirectional paths   the encoder's packed bidirectional cuDNN call against its two single-direction
                        calls: max output difference (fp32, cuDNN RNN precision "ieee") and forward +
                        backward speed on the same batches
  step fp32/bf16/fp16   the toolkit's training step (``asr.training.loop._train_step``) against the bare
                        cuDNN ``nn.LSTM`` + ``F.ctc_loss`` loop of tools/bench/train_throughput.py on the
                        same AN4 batches (features precomputed): audio-s/s, the ratio, each contender's
                        own peak CUDA memory; fp16: the loss scaler's overflow skips. fp32 rows run cuDNN
                        RNNs in TF32 (torch's default, ``torch.backends.cudnn.rnn.fp32_precision``)
  inter-CTC bf16/fp16   training steps with InterCTC under autocast: finite losses
  OOM in log-mel        a real CUDA out-of-memory error inside the batch's log-mel: the step is skipped
                        and counted, the next one trains
  loader                audio-s/s the training loader delivers (``--workers`` processes, log-mel on
                        the GPU) against the fp32 step's: >= 1 keeps the GPU fed
  train fp32/bf16       ``asr train`` for ``--epochs`` epochs, then greedy WER on AN4 test (on the GPU);
                        the two must agree within 1 point
  torchrun NCCL         one epoch of ``asr train`` under ``torchrun --nproc-per-node 2`` (2+ GPUs; with one
                        GPU "not checked": a single rank creates no process group)
  decode greedy/beam    the fp32 model's log-probs computed on the GPU (cuDNN RNNs "ieee"), decoded greedily
                        on the GPU and by beam search, against the same on the CPU: identical transcripts
  Recognizer cuda       ``Recognizer.from_pretrained(..., device="cuda")`` against ``device="cpu"`` on AN4
                        test ("ieee"): identical transcripts, time ratio

    python tools/bench/gpu_check.py                    # about 6-8 minutes on one recent GPU (estimate)
    python tools/bench/gpu_check.py --epochs 10 --workers 8
"""

from __future__ import annotations

import argparse
import contextlib
import math
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
from asr.inference.recognizer import Recognizer  # noqa: E402
from asr.model.checkpoint import load_model  # noqa: E402
from asr.model.ctc import CTCModel  # noqa: E402
from asr.training.distributed import Dist  # noqa: E402
from asr.training.loop import InterCTC, _train_step, autocast, evaluate  # noqa: E402

REPO = tt.REPO
CUDA = torch.device("cuda")


def has_gpu() -> bool:
    """True when torch sees a CUDA device; else one line saying so."""
    if torch.cuda.is_available():
        return True
    print("gpu_check: no CUDA device visible to torch (torch.cuda.is_available() is False): nothing checked; "
          "run it on a machine with an NVIDIA GPU")
    return False


@contextlib.contextmanager
def ieee_rnns():
    """cuDNN RNNs in full fp32 (torch 2.14 defaults to TF32) where GPU and CPU results are compared."""
    rnn = torch.backends.cudnn.rnn
    before = rnn.fp32_precision
    rnn.fp32_precision = "ieee"
    try:
        yield
    finally:
        rnn.fp32_precision = before


def toolkit_batch(w):
    return tt.Batch(ids=[""] * len(w.texts), texts=w.texts, feats=w.feats, feat_lens=w.feat_lens,
                    durations=torch.tensor([w.audio_s]))


def rnn_dtype_row(cfg, work, vocab: int) -> tuple[str, str, str]:
    """Output dtypes under bf16 autocast: a bare nn.LSTM's and the toolkit's encoder layers'."""
    lstm = torch.nn.LSTM(80, 64, batch_first=True).cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        bare = lstm(torch.randn(2, 50, 80, device=CUDA))[0].dtype
    model = CTCModel(cfg.model, vocab).to(CUDA).train()
    seen = []
    for layer in model.encoder.layers:
        layer.register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    with autocast(CUDA, "bf16"):
        model(work[0].feats, work[0].feat_lens)
    ours = sorted({str(d) for d in seen})
    return ("rnn dtype bf16", f"nn.LSTM under bf16 autocast: {bare}; toolkit layers: {', '.join(ours)}",
            "ok" if ours == [str(torch.bfloat16)] else "NOT bf16")


def bidirectional_row(cfg, work, vocab: int, repeats: int) -> tuple[str, str, str]:
    """Packed bidirectional call vs two single-direction calls: same outputs, forward + backward time."""
    model = CTCModel(cfg.model, vocab).to(CUDA).train()
    model.encoder.dropout.p = 0.0

    def run(packed: bool, w):
        for layer in model.encoder.layers:
            layer.packed = packed
        model.zero_grad(set_to_none=True)
        x, lens = model.subsampling(w.feats, w.feat_lens)  # (B, T', D)
        out, _ = model.encoder(x, lens)
        out.sum().backward()
        return out.detach()

    with ieee_rnns():
        diff = max(float((run(True, w) - run(False, w)).abs().max()) for w in work[:3])
    times = tt.time_interleaved({"packed": lambda w: run(True, w), "split": lambda w: run(False, w)}, work, repeats,
                                "cuda")
    walls = {name: [t for t, _ in runs] for name, runs in times.items()}
    ratio = tt.median_ratio(walls["packed"], walls["split"])
    return ("bidirectional paths", f"packed vs two calls: max |diff| {diff:.1e} (ieee); packed {ratio:.2f}x as fast "
            f"(fwd+bwd, default precision)", "ok" if diff < 1e-4 else "DIFFERENT")


def peak_mib(step, work) -> float:
    """Peak CUDA memory of one pass of ``step`` over ``work`` alone."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    for w in work:
        step(w)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**20


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
        skips = []

        def toolkit(w, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, pcfg=pcfg, skips=skips):
            stats, _ = _train_step(model, model, toolkit_batch(w), tokenizer, optimizer, scaler, pcfg, CUDA, Dist(),
                                   False)
            skips.append(stats.scaler_skipped_steps)
            scheduler.step()

        def bare_step(w, bare=bare, optimizer=bare_opt, scaler=bare_scaler, precision=precision):
            with autocast(CUDA, precision):
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

        times = tt.time_interleaved({"toolkit": toolkit, "bare": bare_step}, work, repeats, "cuda")
        peaks = {"toolkit": peak_mib(toolkit, work), "bare": peak_mib(bare_step, work)}
        walls = {name: [w for w, _ in runs] for name, runs in times.items()}
        ratio = tt.median_ratio(walls["toolkit"], walls["bare"])
        speeds[precision] = audio / statistics.median(walls["toolkit"])
        label = f"step {precision}" + (" (TF32 RNNs)" if precision == "fp32" else "")
        extra = f"; scaler skipped {int(sum(skips))}/{len(skips)} steps" if scaler is not None else ""
        rows.append((label, f"toolkit {speeds[precision]:.0f}, bare {audio / statistics.median(walls['bare']):.0f} "
                     f"audio-s/s; peak {peaks['toolkit']:.0f} / {peaks['bare']:.0f} MiB{extra}",
                     f"ratio {ratio:.2f} ({'ok' if ratio >= 0.9 else 'below 0.9'})"))
    return rows, speeds["fp32"]


def inter_ctc_rows(cfg, work, tokenizer) -> list[tuple[str, str, str]]:
    """A few training steps with InterCTC (layer 1) under bf16 and fp16 autocast: finite losses."""
    rows = []
    for precision in ("bf16", "fp16"):
        pcfg = load_config(None, [f"precision={precision}", "inter_ctc_layer=1"])
        pcfg.model, pcfg.data, pcfg.optim = cfg.model, cfg.data, cfg.optim
        model, optimizer, _ = tt.build_toolkit(pcfg, len(tokenizer.units), tt.cmvn_stats(work), "cuda")
        inter = InterCTC(model, 1, pcfg.inter_ctc_weight)
        scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
        losses = [_train_step(model, model, toolkit_batch(w), tokenizer, optimizer, scaler, pcfg, CUDA, Dist(), False,
                              inter)[0].loss for w in work[:3]]
        rows.append((f"inter-CTC {precision}", f"3 steps, losses {', '.join(f'{v:.0f}' for v in losses)}",
                     "ok" if all(math.isfinite(v) and v > 0 for v in losses) else "FAILED"))
    return rows


def oom_row(train_path: Path, cfg, work, tokenizer) -> tuple[str, str, str]:
    """A real CUDA OOM inside the batch's log-mel is skipped by the step's guard; the next batch trains."""
    model, optimizer, _ = tt.build_toolkit(cfg, len(tokenizer.units), tt.cmvn_stats(work), "cuda")
    batcher = FeatureBatcher(cfg.model.features)
    loader = train_loader(train_sampler(load_cuts_lazy(train_path), cfg.data, 0), 16000, 0, True)
    audio = next(iter(loader))
    batcher.from_audio = lambda audio, device: torch.empty(2**45, device=device)  # 32 TiB: the allocator refuses
    skipped, _ = _train_step(model, model, audio, tokenizer, optimizer, None, cfg, CUDA, Dist(), False, None, batcher)
    del batcher.from_audio
    trained, _ = _train_step(model, model, audio, tokenizer, optimizer, None, cfg, CUDA, Dist(), False, None, batcher)
    ok = skipped.oom_batches == 1 and trained.oom_batches == 0 and trained.frames > 0
    return ("OOM in log-mel", f"oom_batches {int(skipped.oom_batches)}, then a step over {int(trained.frames)} frames",
            "ok" if ok else "FAILED")


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


def asr_train(args: list[str], exp: Path, ranks: int = 0) -> None:
    """``asr train ARGS``, under ``torchrun --nproc-per-node RANKS`` when ``ranks`` > 0."""
    cmd = [sys.executable, "-m", "asr.cli", "train"]
    if ranks:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks), "-m",
               "asr.cli", "train"]
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    done = subprocess.run([*cmd, *args, "--exp-dir", str(exp)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"asr train failed:\n{done.stderr[-3000:]}")


def training_rows(an4: Path, epochs: int, tmp: Path) -> tuple[list, Path]:
    """AN4 training in fp32 (TF32 RNNs) and bf16, greedy test WER of each on the GPU; one 2-rank NCCL epoch."""
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
        label = f"train {precision}" + (" (TF32 RNNs)" if precision == "fp32" else "")
        rows.append((label, f"{epochs} epochs in {seconds:.0f} s; test WER greedy {wers[precision]:.2f}",
                     ""))
    gap = abs(wers["fp32"] - wers["bf16"])
    rows.append(("bf16 vs fp32 WER", f"{gap:.2f} points apart", "ok" if gap <= 1.0 else "MORE than 1 point"))
    if torch.cuda.device_count() < 2:  # one rank creates no process group: nothing of NCCL would run
        rows.append(("torchrun NCCL", "one GPU: a 2-rank run needs two", "not checked"))
    else:
        started = time.time()
        asr_train([*common[:-2], "epochs=1", "device=cuda"], tmp / "torchrun", ranks=2)
        rows.append(("torchrun NCCL", f"2 ranks, 1 epoch in {time.time() - started:.0f} s", "ok"))
    return rows, sorted((tmp / "fp32" / "checkpoints").glob("epoch-*.pt"))[-1]


def decode_rows(model_path: Path, an4: Path) -> list:
    """Greedy (on the GPU) and beam transcripts from GPU log-probs equal those from CPU log-probs ("ieee" RNNs)."""
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
            with torch.no_grad(), ieee_rnns():
                log_probs, lens = model(batch.feats.to(device), batch.feat_lens.to(device))
            greedy = [h.text for h in greedy_search(log_probs, lens, tokenizer)]  # its CUDA branch on "cuda"
            outs[device] = (greedy, [h.text for h in beam(log_probs.float().cpu(), lens.cpu())])
        total += len(batch.ids)
        same["greedy"] += sum(a == b for a, b in zip(outs["cpu"][0], outs["cuda"][0]))
        same["beam"] += sum(a == b for a, b in zip(outs["cpu"][1], outs["cuda"][1]))
    return [(f"decode {m} (GPU model)", f"{same[m]}/{total} transcripts equal to the CPU's",
             "ok" if same[m] == total else "DIFFERENT") for m in ("greedy", "beam")]


def recognizer_row(model_path: Path, an4: Path) -> tuple[str, str, str]:
    """``Recognizer(device="cuda")`` against ``device="cpu"`` on AN4 test: the same transcripts, time ratio."""
    cuts = load_cuts(an4 / "an4_cuts_test.jsonl.gz")
    texts, seconds = {}, {}
    for device in ("cpu", "cuda"):
        recognizer = Recognizer.from_pretrained(model_path, device=device)
        with ieee_rnns():
            list(recognizer.decode_cuts(cuts.subset(first=8)))  # warm-up
            started = time.perf_counter()
            texts[device] = [hyp.text for _, _, hyp in recognizer.decode_cuts(cuts)]
            seconds[device] = time.perf_counter() - started
    same = sum(a == b for a, b in zip(texts["cpu"], texts["cuda"]))
    total = len(texts["cpu"])
    return ("Recognizer cuda", f"{same}/{total} transcripts equal to the CPU's; "
            f"{seconds['cpu'] / seconds['cuda']:.1f}x the CPU's speed", "ok" if same == total else "DIFFERENT")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=tt.default_data_dir(), help="AN4 directory")
    parser.add_argument("--epochs", type=int, default=15, help="epochs of each AN4 training")
    parser.add_argument("--workers", type=int, default=4, help="loader workers")
    parser.add_argument("--batches", type=int, default=20, help="batches for the step and loader rows")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats of the step timing")
    args = parser.parse_args()
    if not has_gpu():
        return
    started = time.time()
    cfg = load_config(REPO / "conf" / "an4.yaml")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prepare_an4(args.data_dir, tmp / "an4")
        train_path = tmp / "an4" / "an4_cuts_train.jsonl.gz"
        batches, tokenizer, _ = tt.load_batches(cfg, args.data_dir, args.batches)
        work = tt.prepare_work(batches, tokenizer, cfg.model.subsampling.factor, cfg.model.features.num_mels)
        work = tt.to_device(work, "cuda")
        vocab = len(tokenizer.units)
        rows.append(rnn_dtype_row(cfg, work, vocab))
        rows.append(bidirectional_row(cfg, work, vocab, args.repeats))
        step, step_speed = step_rows(cfg, work, tokenizer, args.repeats)
        rows += step
        rows += inter_ctc_rows(cfg, work, tokenizer)
        rows.append(oom_row(train_path, cfg, work, tokenizer))
        rows.append(loader_row(train_path, cfg, args.workers, step_speed, args.batches))
        train_rows, model_path = training_rows(tmp / "an4", args.epochs, tmp)
        rows += train_rows
        rows += decode_rows(model_path, tmp / "an4")
        rows.append(recognizer_row(model_path, tmp / "an4"))
    print(f"# gpu_check: {torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}, torch {torch.__version__}, "
          f"{time.time() - started:.0f} s in all")
    width = max(len(r[0]) for r in rows)
    for name, figure, verdict in rows:
        print(f"{name:{width}}  {figure:80}  {verdict}")


if __name__ == "__main__":
    main()
