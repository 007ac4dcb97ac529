"""The one training loop shared by every recipe: CTC loss, AdamW, warm-up/hold/cosine schedule.

Resumable at any checkpoint: model, optimizer, scheduler, sampler position and RNG state
are restored, so a killed run continues with exactly the batches and random masks it
would have seen.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import random
import resource
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from lhotse import CutSet

from .checkpoint import CheckpointError, list_checkpoints, load_file, model_from_package, model_package, save_atomic
from .config import TrainConfig, from_dict, to_dict
from .data import Batch, FeatureBatcher, cut_text, eval_batches, load_cuts, train_sampler
from .decode import greedy_search
from .model import CTCModel
from .score import score
from .tokenizer import build_tokenizer

__all__ = ["train", "lr_factor", "ctc_loss", "compute_cmvn", "evaluate"]

log = logging.getLogger(__name__)


def lr_factor(step: int, warmup: int, hold: int, total: int, final_ratio: float) -> float:
    """Linear warm-up to 1 over ``warmup`` steps, hold to step ``hold``, cosine to ``final_ratio`` at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    if step < hold:
        return 1.0
    progress = min(1.0, (step - hold) / max(1, total - hold))
    return final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def ctc_loss(log_probs, out_lens, targets: list[list[int]]) -> tuple[torch.Tensor, int, int]:
    """Summed CTC loss over the utterances whose output is long enough for their labels.

    CTC needs ``len(target) + repeats`` frames; shorter utterances (and empty targets) are
    left out and counted rather than allowed to produce inf.

    Args:
        log_probs (Tensor): (B, T, V) float32.
        out_lens (Tensor): (B,) int64.
        targets: unit ids per utterance.

    Returns:
        (loss summed over kept utterances, kept count, skipped count).
    """
    need = torch.tensor([len(t) + sum(a == b for a, b in zip(t, t[1:])) for t in targets])
    keep = (need <= out_lens.cpu()) & (need > 0)
    kept = int(keep.sum())
    if kept == 0:
        return log_probs.sum() * 0.0, 0, len(targets)
    index = keep.nonzero().squeeze(1)
    flat = torch.tensor([u for i in index.tolist() for u in targets[i]], dtype=torch.int64)
    target_lens = torch.tensor([len(targets[i]) for i in index.tolist()], dtype=torch.int64)
    lp = log_probs[index.to(log_probs.device)].float().transpose(0, 1)  # (B, T, V) -> (T, B, V)
    loss = F.ctc_loss(lp, flat, out_lens[index.to(out_lens.device)], target_lens, blank=0,
                      reduction="sum", zero_infinity=True)
    return loss, kept, len(targets) - kept


@torch.no_grad()
def compute_cmvn(cuts: CutSet, batcher: FeatureBatcher, max_utts: int) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Frame count, per-channel sum and sum of squares (float64) over up to ``max_utts`` cuts."""
    subset = cuts.subset(first=min(max_utts, len(cuts)))
    count, total, total_sq = 0, 0.0, 0.0
    for batch_cuts in eval_batches(subset, max_duration=300.0):
        batch = batcher(batch_cuts)
        for feats, n in zip(batch.feats, batch.feat_lens.tolist()):
            frames = feats[:n].double()
            count += n
            total = total + frames.sum(0)
            total_sq = total_sq + (frames**2).sum(0)
    return count, total, total_sq


def _encode_or_empty(tokenizer, text: str) -> list[int]:
    """Units of ``text``; [] (left out of the loss) when it holds units the tokenizer lacks."""
    try:
        return tokenizer.encode(text)
    except ValueError:
        return []


@torch.no_grad()
def evaluate(model: CTCModel, tokenizer, cuts: CutSet, batcher: FeatureBatcher) -> dict:
    """Dev loss per frame (over utterances the tokenizer can spell) and greedy WER/CER."""
    model.eval()
    loss_sum, frames = 0.0, 0
    refs, hyps = {}, {}
    for batch_cuts in eval_batches(cuts, max_duration=300.0):
        batch = batcher(batch_cuts)
        log_probs, out_lens = model(batch.feats, batch.feat_lens)
        loss, _, _ = ctc_loss(log_probs, out_lens, [_encode_or_empty(tokenizer, t) for t in batch.texts])
        loss_sum += float(loss)
        frames += int(out_lens.sum())
        for cut_id, ref, hyp in zip(batch.ids, batch.texts, greedy_search(log_probs, out_lens, tokenizer)):
            refs[cut_id], hyps[cut_id] = ref, hyp.text
    return {
        "loss": loss_sum / max(frames, 1),
        "wer": score(refs, hyps, "word").err_rate,
        "cer": score(refs, hyps, "char").err_rate,
    }


def _latest_checkpoint(exp_dir: Path) -> dict | None:
    """Newest readable checkpoint (epoch or mid-epoch); corrupt files are reported and skipped."""
    candidates = list_checkpoints(exp_dir, "*.pt")
    for path in sorted(candidates, key=lambda p: p.stat().st_mtime_ns, reverse=True):
        try:
            state = load_file(path)
        except CheckpointError as err:
            log.warning("skipping %s", err)
            continue
        if "train_state" in state:
            log.info("resuming from %s", path)
            return state
    return None


def _prune(exp_dir: Path, keep_last: int) -> None:
    for path in list_checkpoints(exp_dir, "epoch-*.pt")[:-keep_last]:
        path.unlink()
    steps = list_checkpoints(exp_dir, "step-*.pt")
    for path in steps[:-1]:
        path.unlink()


def _setup_file_logging(exp_dir: Path) -> None:
    handler = logging.FileHandler(exp_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("asr").addHandler(handler)


def train(cfg: TrainConfig, train_cuts: str | Path, dev_cuts: str | Path, exp_dir: str | Path) -> Path:
    """Train a CTC model; resumes from the newest checkpoint in ``exp_dir`` if there is one.

    Writes ``exp_dir/checkpoints/epoch-N.pt`` (last ``cfg.keep_last`` kept), ``config.yaml``
    and ``log.csv``. Returns the newest checkpoint path.
    """
    from tqdm import tqdm

    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    _setup_file_logging(exp_dir)
    torch.set_num_threads(cfg.num_threads or os.cpu_count() or 1)
    (exp_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    log.info("config:\n%s", yaml.safe_dump(to_dict(cfg), sort_keys=False).rstrip())

    cuts = load_cuts(train_cuts)
    too_long = cuts.filter(lambda c: c.duration > cfg.data.max_utt_duration).to_eager()
    if len(too_long):
        log.warning("dropping %d training utterances longer than %.1f s", len(too_long), cfg.data.max_utt_duration)
        cuts = cuts.filter(lambda c: c.duration <= cfg.data.max_utt_duration).to_eager()
    dev = load_cuts(dev_cuts)
    batcher = FeatureBatcher(cfg.model.features)

    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    state = _latest_checkpoint(exp_dir)
    if state is not None:
        if state["train_config"] != to_dict(cfg):
            log.warning("config differs from the checkpoint's; continuing with the checkpoint's model")
        model, tokenizer = model_from_package(state)
    else:
        tokenizer = build_tokenizer(cfg.tokenizer, (cut_text(c) for c in cuts))
        model = CTCModel(cfg.model, len(tokenizer.units))
        model.cmvn.set_stats(*compute_cmvn(cuts, batcher, cfg.data.cmvn_max_utts))
    log.info("%d units, %.2fM parameters", len(tokenizer.units), sum(p.numel() for p in model.parameters()) / 1e6)

    sampler = train_sampler(cuts, cfg.data, cfg.seed)
    steps_per_epoch = sum(1 for _ in train_sampler(cuts, cfg.data, cfg.seed))
    total_steps = steps_per_epoch * cfg.epochs
    o = cfg.optim
    optimizer = torch.optim.AdamW(model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    hold = int(o.hold_fraction * total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, o.warmup_steps, hold, total_steps, o.final_lr_ratio)
    )
    epoch, step = 0, 0
    if state is not None:
        ts = state["train_state"]
        optimizer.load_state_dict(ts["optimizer"])
        scheduler.load_state_dict(ts["scheduler"])
        sampler.load_state_dict(ts["sampler"])
        torch.set_rng_state(ts["torch_rng"])
        random.setstate(ts["python_rng"])
        epoch, step = ts["epoch"], ts["step"]

    def save(name: str, epoch_done: bool) -> Path:
        package = model_package(model, tokenizer)
        package["train_config"] = to_dict(cfg)
        package["train_state"] = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "sampler": sampler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
            "epoch": epoch + 1 if epoch_done else epoch,
            "step": step,
        }
        path = exp_dir / "checkpoints" / name
        save_atomic(package, path)
        _prune(exp_dir, cfg.keep_last)
        return path

    csv_path = exp_dir / "log.csv"
    new_csv = not csv_path.exists()
    last_path = None
    while epoch < cfg.epochs:
        sampler.set_epoch(epoch)
        model.train()
        started = time.time()
        loss_sum = frames = audio = 0.0
        skipped = 0
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}", unit="batch", disable=None)
        for batch_cuts in sampler:
            batch: Batch = batcher(batch_cuts)
            log_probs, out_lens = model(batch.feats, batch.feat_lens)
            loss, kept, n_skip = ctc_loss(log_probs, out_lens, [tokenizer.encode(t) for t in batch.texts])
            skipped += n_skip
            optimizer.zero_grad(set_to_none=True)
            if kept:
                (loss / kept).backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
                optimizer.step()
            scheduler.step()
            step += 1
            loss_sum += loss.item()
            frames += int(out_lens.sum())
            audio += float(batch.durations.sum())
            speed = audio / (time.time() - started)
            bar.set_postfix(loss=f"{loss_sum / max(frames, 1):.3f}", audio_s_per_s=f"{speed:.0f}")
            bar.update()
            if step % cfg.log_every == 0:
                log.info("epoch %d step %d loss/frame %.4f lr %.2e %.0f audio-s/s",
                         epoch + 1, step, loss_sum / max(frames, 1), scheduler.get_last_lr()[0], speed)
            if cfg.save_every_steps and step % cfg.save_every_steps == 0:
                last_path = save(f"step-{step:08d}.pt", epoch_done=False)
            if cfg.max_steps and step >= cfg.max_steps:
                bar.close()
                log.info("stopping at step %d (max_steps)", step)
                return save(f"step-{step:08d}.pt", epoch_done=False)
        bar.close()
        elapsed = time.time() - started
        metrics = evaluate(model, tokenizer, dev, batcher)
        row = {
            "epoch": epoch + 1, "step": step, "lr": f"{scheduler.get_last_lr()[0]:.3e}",
            "train_loss": f"{loss_sum / max(frames, 1):.4f}", "dev_loss": f"{metrics['loss']:.4f}",
            "dev_wer": f"{metrics['wer']:.2f}", "dev_cer": f"{metrics['cer']:.2f}",
            "seconds": f"{elapsed:.1f}", "audio_s_per_s": f"{audio / elapsed:.1f}", "skipped_utts": skipped,
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        }
        log.info("epoch %d: %s", epoch + 1, " ".join(f"{k}={v}" for k, v in row.items()))
        with open(csv_path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(row))
            if new_csv:
                writer.writeheader()
                new_csv = False
            writer.writerow(row)
        last_path = save(f"epoch-{epoch + 1:03d}.pt", epoch_done=True)
        epoch += 1
    return last_path
