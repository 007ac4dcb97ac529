"""The one training loop shared by every recipe: CTC loss, AdamW, warm-up/hold/cosine schedule.

The loop reads as its steps (``_Trainer``): set up, load data, restore, train one epoch, end
the epoch (validate, log), save. Input: the training manifest is read lazily (start-up cost
and memory do not grow with an epoch's worth of Cut objects); a ``DataLoader`` with
``data.num_workers`` processes reads and decodes audio ahead of the step, and log-mel, CMVN
and SpecAugment run on the training device.

Resumable at any checkpoint: model, optimizer, scheduler, sampler position and RNG state
are restored, so a killed run continues with exactly the batches and random masks it
would have seen. Runs unchanged under ``torchrun`` (DistributedDataParallel, one sampler
shard per rank, rank 0 writes), in bf16/fp16 autocast with the CTC loss in fp32, and
survives faults: SIGTERM/SIGINT save a checkpoint and stop, an out-of-memory batch is
skipped (by every rank together under DDP), a training cut with missing, unreadable or
truncated audio is skipped with a warning and counted (``bad_audio`` in ``log.csv``), a
non-finite gradient skips the step, an unreadable checkpoint falls back to the one before.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
import random
import resource
import signal
import time
from dataclasses import dataclass, fields
from itertools import islice
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from lhotse import CutSet
from tqdm import tqdm

from ..model.checkpoint import CheckpointError, list_checkpoints, load_file, model_from_package, model_package, save_atomic
from ..config import DataConfig, TrainConfig, to_dict
from ..data.cuts import (AudioBatch, AudioDataset, Batch, FeatureBatcher, estimate_batches, eval_batches, load_cuts,
                         load_cuts_lazy, scan_manifest, train_loader, train_sampler)
from .distill import Distillation
from .distributed import (Dist, all_sum, broadcast_object, gather_objects, init_distributed, leave_distributed,
                          pick_device)
from ..decoding.search import greedy_search
from ..model.ctc import CTCModel
from ..model.files import load_float_model
from ..model.transfer import set_frozen, transfer_units
from ..audio.perturb import speed_perturb
from ..scoring.score import score
from ..data.tokenizer import build_tokenizer, ctc_min_frames

__all__ = ["train", "TrainingStopped", "StepStats", "lr_factor", "ctc_loss", "compute_cmvn", "evaluate", "autocast"]

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
    need = torch.tensor([ctc_min_frames(t) for t in targets])
    keep = (need <= out_lens.cpu()) & (need > 0)
    kept = int(keep.sum())
    if kept == 0:
        return log_probs.sum() * 0.0, 0, len(targets)
    index = keep.nonzero().squeeze(1)
    flat = torch.tensor([u for i in index.tolist() for u in targets[i]], dtype=torch.int64)
    target_lens = torch.tensor([len(targets[i]) for i in index.tolist()], dtype=torch.int64)
    device = log_probs.device
    lp = log_probs[index.to(device)].float().transpose(0, 1)  # (B, T, V) -> (T, B, V), fp32 under autocast
    loss = F.ctc_loss(lp, flat.to(device), out_lens[index.to(out_lens.device)].to(device), target_lens.to(device),
                      blank=0, reduction="sum", zero_infinity=True)
    return loss, kept, len(targets) - kept


class InterCTC:
    """InterCTC (Lee & Watanabe, 2021): the output of a middle encoder layer, through the model's
    own output layer, is trained with CTC as well. A forward hook keeps those logits, so the
    model's ``forward`` and its exports are unchanged."""

    def __init__(self, model: CTCModel, layer: int, weight: float):
        layers = len(model.encoder.layers)
        if not 1 <= layer < layers:
            raise ValueError(f"inter_ctc_layer: expected 1 to {layers - 1} (the encoder has {layers} layers), got {layer}")
        if model.encoder.chunk_frames > 0:
            raise ValueError("inter_ctc_layer: not available for chunked (LC-BLSTM) encoders")
        self.model, self.weight, self.logits = model, weight, None
        model.encoder.projections[layer - 1].register_forward_hook(self._keep)

    def _keep(self, module, inputs, output) -> None:
        # The output layer runs here, inside the forward, in the precision of the layer's output:
        # under bf16/fp16 autocast that output is already low precision (the encoder runs its
        # layers in the autocast dtype outside autocast, see RecurrentEncoder), so autocast is on
        # for the output layer exactly when the main output layer has it.
        if not module.training:
            self.logits = None
            return
        low = output.dtype in (torch.float16, torch.bfloat16)
        with torch.autocast(output.device.type, dtype=output.dtype if low else None, enabled=low):
            self.logits = self.model.output(output)  # (B, T', V)

    def loss(self, main_loss: torch.Tensor, out_lens: torch.Tensor, targets: list[list[int]]) -> torch.Tensor:
        """``(1 - w) * main_loss + w *`` the CTC loss of the kept layer's output."""
        log_probs = self.logits.float().log_softmax(dim=-1)  # (B, T', V) fp32
        self.logits = None
        inter_loss, _, _ = ctc_loss(log_probs, out_lens, targets)
        return (1.0 - self.weight) * main_loss + self.weight * inter_loss


@torch.no_grad()
def compute_cmvn(cuts: CutSet, batcher: FeatureBatcher, max_utts: int,
                 max_duration: float = DataConfig.eval_max_duration) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Frame count, per-channel sum and sum of squares (float64) over the first ``max_utts`` cuts.

    Only those cuts are read (a lazy ``cuts`` is not iterated further); any whose audio cannot be
    read are left out.
    """
    subset = CutSet.from_cuts(islice(cuts, max_utts))
    reader = AudioDataset(batcher.cfg.sample_rate)  # cuts with bad audio are left out (training reports them)
    count, total, total_sq = 0, 0.0, 0.0
    for batch_cuts in eval_batches(subset, max_duration):
        batch = batcher.from_audio(reader[(batch_cuts, None)])
        for feats, n in zip(batch.feats, batch.feat_lens.tolist()):
            frames = feats[:n].double()
            count += n
            total = total + frames.sum(0)
            total_sq = total_sq + (frames**2).sum(0)
    if count == 0:
        raise ValueError(f"no readable audio among the first {max_utts} training cuts: cannot estimate CMVN")
    return count, total, total_sq


def _encode_or_empty(tokenizer, text: str) -> list[int]:
    """Units of ``text``; [] (left out of the loss) when it holds units the tokenizer lacks."""
    try:
        return tokenizer.encode(text)
    except ValueError:
        return []


def autocast(device: torch.device, precision: str):
    """Autocast context for ``precision`` ("fp32": none, "bf16", "fp16" on CUDA only)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        if device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            raise ValueError("precision 'bf16' on the CPU needs AVX512-BF16 or AMX (oneDNN has no bf16 LSTM "
                             "without them) and this CPU has neither; use 'fp32'")
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "fp16":
        if device.type != "cuda":
            raise ValueError("precision 'fp16' needs a CUDA device; use 'bf16' on the CPU")
        return torch.autocast("cuda", dtype=torch.float16)
    raise ValueError(f"precision: expected 'fp32', 'bf16' or 'fp16', got {precision!r}")


@torch.no_grad()
def evaluate(model: CTCModel, tokenizer, cuts: CutSet, batcher: FeatureBatcher,
             device: torch.device = torch.device("cpu"), precision: str = TrainConfig.precision,
             max_duration: float = DataConfig.eval_max_duration) -> dict:
    """Dev loss per frame (over utterances the tokenizer can spell) and greedy WER/CER."""
    model.eval()
    loss_sum, frames = 0.0, 0
    refs, hyps = {}, {}
    for batch_cuts in eval_batches(cuts, max_duration):
        batch = batcher(batch_cuts)
        with autocast(device, precision):
            log_probs, out_lens = model(batch.feats.to(device), batch.feat_lens.to(device))
        loss, _, _ = ctc_loss(log_probs, out_lens, [_encode_or_empty(tokenizer, t) for t in batch.texts])
        loss_sum += float(loss)
        frames += int(out_lens.sum())
        for cut_id, ref, hyp in zip(batch.ids, batch.texts, greedy_search(log_probs.float().cpu(), out_lens.cpu(), tokenizer)):
            refs[cut_id], hyps[cut_id] = ref, hyp.text
    return {
        "loss": loss_sum / max(frames, 1),
        "wer": score(refs, hyps, "word").err_rate,
        "cer": score(refs, hyps, "char").err_rate,
    }


class TrainingStopped(Exception):
    """Raised after SIGTERM/SIGINT once the checkpoint at ``path`` is written."""

    def __init__(self, signum: int, path: Path):
        super().__init__(f"stopped by {signal.Signals(signum).name}; checkpoint {path}; run the same command to resume")
        self.signum = signum
        self.path = path


class _StopOnSignal:
    """Turns SIGTERM/SIGINT into a flag the loop polls between steps; a second SIGINT interrupts at once."""

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.signum == signal.SIGINT == signum:
            raise KeyboardInterrupt
        self.signum = signum
        log.warning("%s received: saving a checkpoint after this step", signal.Signals(signum).name)

    def __enter__(self) -> _StopOnSignal:
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):  # not the main thread: no handlers, no graceful stop
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _is_out_of_memory(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and ("out of memory" in str(err) or "can't allocate memory" in str(err)))


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


def _setup_logging(exp_dir: Path, ctx: Dist) -> None:
    """Rank 0 logs to ``exp_dir/train.log`` too; other ranks only report warnings."""
    if not ctx.is_main:
        logging.getLogger("asr").setLevel(logging.WARNING)
        return
    handler = logging.FileHandler(exp_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("asr").addHandler(handler)


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# Fields that only steer how a run proceeds; changing them between resumes is expected.
_RUN_CONTROL = {"max_steps", "num_threads", "log_every", "save_every_steps", "device", "keep_last",
                "scaler_warn_skips"}


def _warn_config_changes(saved: dict, current: dict, prefix: str = "") -> None:
    """Log every config value that differs from the checkpoint's (the checkpoint's model wins)."""
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            _warn_config_changes(a, b, f"{prefix}{key}.")
        elif a != b and f"{prefix}{key}" not in _RUN_CONTROL:
            log.warning("config %s%s is %r, the checkpoint's is %r; the model comes from the checkpoint",
                        prefix, key, b, a)


def _data_tokenizer(cfg: TrainConfig, manifest: str | Path):
    """Tokenizer trained on the transcripts of ``manifest`` (one cheap pass, no Cut objects)."""
    scan = scan_manifest(manifest, texts=True)
    texts = (t for t, d in zip(scan.texts, scan.durations) if d <= cfg.data.max_utt_duration)  # the cuts trained on
    return build_tokenizer(cfg.tokenizer, texts)


def _new_model(cfg: TrainConfig, manifest: str | Path, cuts: CutSet, batcher: FeatureBatcher) -> dict:
    """Tokenizer trained on the transcripts of ``manifest`` and an initialised model with CMVN statistics
    from the first cuts of ``cuts``, as a package. With ``cfg.init_from``: see ``_initial_model``."""
    if cfg.init_from:
        return _initial_model(cfg, manifest, cuts, batcher)
    tokenizer = _data_tokenizer(cfg, manifest)
    model = CTCModel(cfg.model, len(tokenizer.units))
    model.cmvn.set_stats(*compute_cmvn(cuts, batcher, cfg.data.cmvn_max_utts, cfg.data.eval_max_duration))
    return model_package(model, tokenizer)


def _initial_model(cfg: TrainConfig, manifest: str | Path, cuts: CutSet, batcher: FeatureBatcher) -> dict:
    """A ``cfg.model`` model holding the weights of ``cfg.init_from``, as a package.

    The architectures must match parameter for parameter; fields that do not change the weights may
    differ (e.g. an LC-BLSTM's ``chunk_frames`` from a full-utterance BiLSTM, dropout, SpecAugment).
    With ``init_units: data`` the units are trained on ``manifest``'s text as for a new run and only
    the encoder must match (``transfer_units``); with ``init_cmvn: data`` CMVN is estimated on ``cuts``.
    """
    for name in ("init_units", "init_cmvn"):
        if getattr(cfg, name) not in ("model", "data"):
            raise ValueError(f"{name}: expected 'model' or 'data', got {getattr(cfg, name)!r}")
    source, tokenizer = load_float_model(cfg.init_from)
    if cfg.init_units == "data":
        units = _data_tokenizer(cfg, manifest)
        try:
            model, shared = transfer_units(source, tokenizer.units, cfg.model, units.units)
        except ValueError as err:
            raise CheckpointError(f"{cfg.init_from}: init_from: {err}") from None
        log.info("initialised from %s: encoder weights; %d new units, %d of them shared (output rows copied)",
                 cfg.init_from, len(units.units), shared)
        tokenizer = units
    else:
        model = _same_units_model(cfg, source, tokenizer)
    if cfg.init_cmvn == "data":
        model.cmvn.set_stats(*compute_cmvn(cuts, batcher, cfg.data.cmvn_max_utts, cfg.data.eval_max_duration))
        log.info("CMVN statistics recomputed on the training cuts")
    return model_package(model, tokenizer)


def _same_units_model(cfg: TrainConfig, source: CTCModel, tokenizer) -> CTCModel:
    """``source``'s weights, CMVN and units in a ``cfg.model`` model."""
    if tokenizer.kind != cfg.tokenizer.kind:
        raise CheckpointError(f"{cfg.init_from}: init_from has a {tokenizer.kind!r} tokenizer, the config asks "
                              f"for {cfg.tokenizer.kind!r} (init_units=data trains new units)")
    model = CTCModel(cfg.model, len(tokenizer.units))
    try:
        model.load_state_dict(source.state_dict())
    except RuntimeError as err:  # torch lists every mismatch on its own line after the first
        detail = " ".join(line.strip() for line in str(err).splitlines()[1:3])
        raise CheckpointError(f"{cfg.init_from}: its weights do not fit model: config ({detail})") from None
    log.info("initialised from %s (weights, CMVN and %d units)", cfg.init_from, len(tokenizer.units))
    return model


def _freeze_for_epoch(trainer: _Trainer) -> None:
    """``init_freeze_layers`` lowest layers fixed during the first ``init_freeze_epochs`` epochs of a fine-tuning."""
    cfg = trainer.cfg
    if not (cfg.init_from and cfg.init_freeze_layers and cfg.init_freeze_epochs):
        return
    if trainer.ctx.enabled:  # DDP's gradient buckets are fixed when it wraps the model
        raise ValueError("init_freeze_layers: not available under torchrun (DDP); set it to 0")
    frozen = trainer.epoch < cfg.init_freeze_epochs
    set_frozen(trainer.model, cfg.init_freeze_layers, frozen)
    if frozen or trainer.epoch == cfg.init_freeze_epochs:
        log.info("epoch %d: subsampling and %d lowest encoder layers %s", trainer.epoch + 1, cfg.init_freeze_layers,
                 "frozen" if frozen else "trained from now on")


def _log_epoch(csv_path: Path, row: dict) -> None:
    new = not csv_path.exists()
    with open(csv_path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


@dataclass
class StepStats:
    """What training did on this rank: one step's figures, or their running sum over an epoch."""

    loss: float = 0.0  # summed CTC loss of the utterances in the loss
    frames: float = 0.0  # output frames of those batches
    audio_s: float = 0.0  # seconds of audio trained on
    skipped_utts: float = 0.0  # utterances left out of the loss (too short for their labels)
    oom_batches: float = 0.0  # batches skipped for running out of memory
    nonfinite_steps: float = 0.0  # steps skipped for a non-finite gradient norm (fp32/bf16)
    scaler_skipped_steps: float = 0.0  # fp16 steps skipped by the loss scaler for an overflow (it lowers its scale)
    bad_audio: float = 0.0  # training cuts left out because their audio is missing, unreadable or truncated

    def __iadd__(self, other: StepStats) -> StepStats:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def summed(self, ctx: Dist, device: torch.device) -> StepStats:
        """The sum of every rank's figures (all ranks take part)."""
        return StepStats(*all_sum([getattr(self, f.name) for f in fields(self)], ctx, device))

    def loss_per_frame(self) -> float:
        return self.loss / max(self.frames, 1)


class _MaxSteps(Exception):
    """Internal: ``cfg.max_steps`` reached; ``path`` is the checkpoint written."""

    def __init__(self, path: Path):
        self.path = path


class _Trainer:
    """One training run: its named steps share the model, optimiser, sampler and counters held here."""

    def __init__(self, cfg: TrainConfig, exp_dir: Path):
        """Set up: device, process group, threads, logging, the resolved config beside the checkpoints."""
        self.cfg = cfg
        self.exp_dir = exp_dir
        exp_dir.mkdir(parents=True, exist_ok=True)
        self.device = pick_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
        self.ctx = init_distributed(self.device)
        _setup_logging(exp_dir, self.ctx)
        cores = os.cpu_count() or 1
        torch.set_num_threads(cfg.num_threads or max(1, cores // self.ctx.local_world_size))
        if self.ctx.is_main:
            (exp_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        log.info("config:\n%s", yaml.safe_dump(to_dict(cfg), sort_keys=False).rstrip())
        log.info("device %s, precision %s, %d process(es)", self.device, cfg.precision, self.ctx.world_size)
        autocast(self.device, cfg.precision)  # rejects a bad precision before any work
        self.epoch, self.step = 0, 0
        self.scaler_skips = 0  # fp16 loss-scaler skips in a row

    def load_data(self, train_cuts: str | Path, dev_cuts: str | Path) -> None:
        """Training cuts, read lazily (speed-perturbed, too-long ones dropped), dev cuts, the feature batcher.

        Nothing holds the training set in memory: one cheap pass reads the cut durations (for the
        counts logged and the estimated number of batches per epoch); the sampler then reads the
        manifest as it goes, every epoch.
        """
        cfg = self.cfg
        started = time.time()
        durations = scan_manifest(train_cuts).durations
        factors = [1.0] + [float(f) for f in dict.fromkeys(cfg.data.speed_perturb) if f != 1.0]
        durations = np.concatenate([durations / f for f in factors])  # a copy at speed f lasts 1/f as long
        too_long = durations > cfg.data.max_utt_duration
        log.info("%s: %d training cuts%s, %.1f hours; durations read in %.1f s", train_cuts,
                 len(durations) // len(factors),
                 f" ({len(durations)} with speed perturbation)" if len(factors) > 1 else "",
                 durations.sum() / 3600, time.time() - started)
        self.manifest = train_cuts
        cuts = speed_perturb(load_cuts_lazy(train_cuts), cfg.data.speed_perturb)
        if too_long.any():
            log.warning("dropping %d training utterances longer than %.1f s", int(too_long.sum()),
                        cfg.data.max_utt_duration)
            cuts = cuts.filter(lambda c: c.duration <= cfg.data.max_utt_duration)
        self.cuts = cuts
        self.durations = durations[~too_long]
        self.dev = load_cuts(dev_cuts)
        self.batcher = FeatureBatcher(cfg.model.features)

    def restore(self) -> None:
        """Model, optimiser, schedule, sampler position and random streams: from the newest checkpoint, or new."""
        cfg, ctx, device = self.cfg, self.ctx, self.device
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        # Rank 0 alone looks: ranks without a shared filesystem could disagree on what exists.
        state = broadcast_object(_latest_checkpoint(self.exp_dir) if ctx.is_main else None, ctx)
        if state is not None:
            _warn_config_changes(state["train_config"], to_dict(cfg))
        package = state or broadcast_object(
            _new_model(cfg, self.manifest, self.cuts, self.batcher) if ctx.is_main else None, ctx)
        self.model, self.tokenizer = model_from_package(package)
        self.model.to(device)
        log.info("%d units, %.2fM parameters", len(self.tokenizer.units),
                 sum(p.numel() for p in self.model.parameters()) / 1e6)
        self.step_model = self.model
        if ctx.enabled:
            self.step_model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None, broadcast_buffers=False)
        torch.manual_seed(cfg.seed + ctx.rank)  # each rank draws its own SpecAugment masks
        random.seed(cfg.seed + ctx.rank)

        self.sampler = train_sampler(self.cuts, cfg.data, cfg.seed, ctx.world_size, ctx.rank)
        workers = cfg.data.num_workers
        if workers < 0:  # auto: see DataConfig.num_workers
            workers = 4 if device.type == "cuda" else 0
        self.loader = train_loader(self.sampler, cfg.model.features.sample_rate, workers, device.type == "cuda")
        # An estimate (no pass over the epoch): sets the LR schedule's length and the progress bar only.
        self.steps_per_epoch = estimate_batches(self.durations, cfg.data, ctx.world_size)
        total_steps = self.steps_per_epoch * cfg.epochs
        log.info("about %d batches per epoch and process (estimated from %.1f hours of audio), %d loader workers",
                 self.steps_per_epoch, self.durations.sum() / 3600, workers)
        o = cfg.optim
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
        hold = int(o.hold_fraction * total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, o.warmup_steps, hold, total_steps, o.final_lr_ratio)
        )
        self.scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
        self.inter_ctc = InterCTC(self.model, cfg.inter_ctc_layer, cfg.inter_ctc_weight) if cfg.inter_ctc_layer else None
        self.distill = (Distillation(cfg.distill_from, cfg.distill_weight, cfg.distill_temperature, self.model,
                                     self.tokenizer.units, device, cfg.distill_shift) if cfg.distill_from else None)
        if state is None:
            return
        ts = state["train_state"]
        self.optimizer.load_state_dict(ts["optimizer"])
        self.scheduler.load_state_dict(ts["scheduler"])
        if self.scaler is not None and "scaler" in ts:
            self.scaler.load_state_dict(ts["scaler"])
        self.epoch, self.step = ts["epoch"], ts["step"]
        saved_world_size = ts.get("world_size", len(ts["rng"]))  # checkpoints before it: one random state per rank
        if saved_world_size == ctx.world_size:
            self.sampler.load_state_dict(ts["sampler"])
            _set_rng_state(ts["rng"][ctx.rank], device)
        else:
            log.warning("checkpoint written by %d process(es), now %d: epoch %d starts again from its first batch, "
                        "with new random streams; the step count (%d) carries on in a learning-rate schedule laid "
                        "out for %d steps per epoch", saved_world_size, ctx.world_size, self.epoch + 1, self.step,
                        self.steps_per_epoch)

    def run(self) -> Path | None:
        """Epochs until ``cfg.epochs`` (or ``cfg.max_steps``); returns the newest checkpoint written."""
        last_path = None
        with _StopOnSignal() as stop:
            while self.epoch < self.cfg.epochs:
                _freeze_for_epoch(self)
                started = time.time()
                try:
                    totals = self.train_one_epoch(stop)
                except _MaxSteps as reached:
                    return reached.path
                last_path = self.end_epoch(totals, time.time() - started)
                if all_sum([float(stop.signum is not None)], self.ctx, self.device)[0]:
                    raise TrainingStopped(stop.signum or signal.SIGTERM, last_path)
        return last_path

    def train_one_epoch(self, stop: _StopOnSignal) -> StepStats:
        """The rest of the current epoch; raises ``TrainingStopped`` on a signal, ``_MaxSteps`` at the step limit.

        Returns this rank's totals over the batches trained in this call.
        """
        cfg, ctx = self.cfg, self.ctx
        self.sampler.set_epoch(self.epoch)
        self.model.train()
        started = time.time()
        totals = StepStats()
        bar = tqdm(total=self.steps_per_epoch, desc=f"epoch {self.epoch + 1}", unit="batch",
                   disable=None if ctx.is_main else True)
        try:
            for audio in self.loader:
                sampler_state = audio.sampler_state
                for message in audio.bad_audio:
                    log.warning("skipping a training cut: %s", message)
                stats, stop_requested = _train_step(self.step_model, self.model, audio, self.tokenizer, self.optimizer,
                                                    self.scaler, cfg, self.device, ctx, stop.signum is not None,
                                                    self.inter_ctc, self.batcher, self.distill)
                if self.scaler is not None:
                    self.scaler_skips = _scaler_skip_run(self.scaler_skips, stats.scaler_skipped_steps,
                                                         self.scaler.get_scale(), cfg.scaler_warn_skips)
                self.scheduler.step()
                self.step += 1
                stats.bad_audio = len(audio.bad_audio)
                totals += stats
                speed = totals.audio_s * ctx.world_size / (time.time() - started)
                bar.set_postfix(loss=f"{totals.loss_per_frame():.3f}", audio_s_per_s=f"{speed:.0f}")
                bar.update()
                if self.step % cfg.log_every == 0:
                    log.info("epoch %d step %d loss/frame %.4f lr %.2e %.0f audio-s/s", self.epoch + 1, self.step,
                             totals.loss_per_frame(), self.scheduler.get_last_lr()[0], speed)
                if stop_requested:  # some rank was asked to stop
                    path = self.save(f"step-{self.step:08d}.pt", epoch_done=False, sampler_state=sampler_state)
                    raise TrainingStopped(stop.signum or signal.SIGTERM, path)
                if cfg.save_every_steps and self.step % cfg.save_every_steps == 0:
                    self.save(f"step-{self.step:08d}.pt", epoch_done=False, sampler_state=sampler_state)
                if cfg.max_steps and self.step >= cfg.max_steps:
                    log.info("stopping at step %d (max_steps)", self.step)
                    raise _MaxSteps(self.save(f"step-{self.step:08d}.pt", epoch_done=False, sampler_state=sampler_state))
        finally:
            bar.close()
        return totals

    def end_epoch(self, totals: StepStats, elapsed: float) -> Path:
        """Sum the ranks' totals, validate, log a row of ``log.csv`` (rank 0), save the epoch checkpoint."""
        summed = totals.summed(self.ctx, self.device)
        if self.ctx.is_main:
            metrics = evaluate(self.model, self.tokenizer, self.dev, self.batcher, self.device, self.cfg.precision,
                               self.cfg.data.eval_max_duration)
            row = {
                "epoch": self.epoch + 1, "step": self.step, "lr": f"{self.scheduler.get_last_lr()[0]:.3e}",
                "train_loss": f"{summed.loss_per_frame():.4f}", "dev_loss": f"{metrics['loss']:.4f}",
                "dev_wer": f"{metrics['wer']:.2f}", "dev_cer": f"{metrics['cer']:.2f}",
                "seconds": f"{elapsed:.1f}", "audio_s_per_s": f"{summed.audio_s / elapsed:.1f}",
                "skipped_utts": int(summed.skipped_utts), "oom_batches": int(summed.oom_batches),
                "nonfinite_steps": int(summed.nonfinite_steps),
                "scaler_skipped_steps": int(summed.scaler_skipped_steps), "bad_audio": int(summed.bad_audio),
                "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
            }
            log.info("epoch %d: %s", self.epoch + 1, " ".join(f"{k}={v}" for k, v in row.items()))
            _log_epoch(self.exp_dir / "log.csv", row)
        path = self.save(f"epoch-{self.epoch + 1:03d}.pt", epoch_done=True)
        self.epoch += 1
        return path

    def save(self, name: str, epoch_done: bool, sampler_state: dict | None = None) -> Path:
        """Write checkpoint ``name`` (rank 0; every rank hands in its random state) and prune old ones.

        ``sampler_state`` is the sampler's state just after the batch last trained on (the sampler
        itself may be ahead, prefetching); None takes the sampler's own (at an epoch's end).
        """
        rngs = gather_objects(_rng_state(self.device), self.ctx)  # every rank takes part
        path = self.exp_dir / "checkpoints" / name
        if not self.ctx.is_main:
            return path
        package = model_package(self.model, self.tokenizer)
        package["train_config"] = to_dict(self.cfg)
        package["train_state"] = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sampler": sampler_state or self.sampler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "rng": rngs,
            "world_size": self.ctx.world_size,  # a resume with another one cannot restore the sampler's position
            "epoch": self.epoch + 1 if epoch_done else self.epoch,
            "step": self.step,
        }
        save_atomic(package, path)
        _prune(self.exp_dir, self.cfg.keep_last)
        return path


def train(cfg: TrainConfig, train_cuts: str | Path, dev_cuts: str | Path, exp_dir: str | Path) -> Path:
    """Train a CTC model; resumes from the newest checkpoint in ``exp_dir`` if there is one.

    Writes ``exp_dir/checkpoints/epoch-N.pt`` (last ``cfg.keep_last`` kept), ``config.yaml``,
    ``train.log`` and ``log.csv``; under torchrun only rank 0 writes. Returns the newest
    checkpoint path. Raises ``TrainingStopped`` after SIGTERM/SIGINT (checkpoint written).
    Under torchrun, a run that ends (or stops) on every rank leaves the process group it joined
    together; after an error the process group is left as it is (a peer may be gone).
    """
    trainer = _Trainer(cfg, Path(exp_dir))
    ctx = trainer.ctx
    try:
        trainer.load_data(train_cuts, dev_cuts)
        trainer.restore()
        result = trainer.run()
    except TrainingStopped as stopped:  # every rank stops here together
        result = stopped.with_traceback(None)  # its frames would keep the trainer, and so the process group, alive
    del trainer
    leave_distributed(ctx)
    if isinstance(result, TrainingStopped):
        raise result
    return result


def _train_step(step_model, model: CTCModel, batch: Batch | AudioBatch, tokenizer, optimizer, scaler,
                cfg: TrainConfig, device: torch.device, ctx: Dist, stop_requested: bool,
                inter_ctc: InterCTC | None = None, batcher: FeatureBatcher | None = None,
                distill: Distillation | None = None) -> tuple[StepStats, bool]:
    """One optimiser step on this rank's ``batch`` (an ``AudioBatch`` gets its log-mel from ``batcher`` here).

    The loss is the CTC sum over the utterances kept on *all* ranks divided by their number,
    so gradients equal a single process's on the union of the ranks' batches. A step whose
    global gradient norm is not finite is skipped (every rank sees the same norm); under fp16
    loss scaling that is the scaler's routine overflow skip, counted apart. A batch that runs
    out of memory in its log-mel, the forward pass or the loss is skipped by every rank
    together: the ranks agree before the backward. Out of memory in the backward is skipped on
    a single process and raised under DDP (the other ranks are already waiting for its
    gradients). A batch left empty by bad audio still takes part in every collective, with a
    dummy utterance that adds nothing to the loss.

    Returns:
        (this step's figures on this rank, whether any rank was asked to stop).
    """
    optimizer.zero_grad(set_to_none=True)
    audio = float(batch.durations.sum())
    kept, oom, loss = 0, 0, None
    try:
        loss, main_loss, kept, n_skip, frames = _forward_loss(step_model, batch, tokenizer, cfg, device, inter_ctc,
                                                              batcher, distill)
    except RuntimeError as err:
        if not _is_out_of_memory(err):
            raise
        oom = 1
        log.warning("out of memory on a batch of %d utterances (%.1f s of audio, longest %.1f s): skipped",
                    len(batch.ids), audio, float(batch.durations.max()) if batch.ids else 0.0)
    global_kept, stop_count, global_oom = all_sum([kept, float(stop_requested), oom], ctx, device)
    if global_oom:  # every rank skips this step
        if not oom:
            log.warning("another process ran out of memory on its batch: step skipped on every process")
        del loss
        _free_memory(optimizer, device)
        return StepStats(audio_s=audio, oom_batches=oom), bool(stop_count)
    try:
        nonfinite, scaler_skipped = _backward_step(loss, global_kept, model, optimizer, scaler, cfg, ctx)
    except RuntimeError as err:
        if ctx.enabled or not _is_out_of_memory(err):
            raise
        del loss
        _free_memory(optimizer, device)
        log.warning("out of memory in the backward of a batch of %d utterances (%.1f s of audio, longest %.1f s): "
                    "skipped", len(batch.ids), audio, float(batch.durations.max()))
        return StepStats(audio_s=audio, oom_batches=1), bool(stop_count)
    loss_value = float(main_loss)
    loss_value = loss_value if math.isfinite(loss_value) else 0.0
    return StepStats(loss_value, frames, audio, n_skip, 0, nonfinite, scaler_skipped), bool(stop_count)


def _forward_loss(step_model, batch: Batch | AudioBatch, tokenizer, cfg: TrainConfig, device: torch.device,
                  inter_ctc: InterCTC | None, batcher: FeatureBatcher | None,
                  distill: Distillation | None = None) -> tuple:
    """Log-mel (of an ``AudioBatch``), forward under autocast, CTC loss (with InterCTC's and distillation's).

    Returns:
        (loss to back-propagate, the last layer's CTC loss (detached, logged), utterances in the
        loss, utterances left out, output frames).
    """
    if isinstance(batch, AudioBatch):
        batch = batcher.from_audio(batch, device)
    feats, feat_lens, texts = batch.feats, batch.feat_lens, batch.texts
    if not batch.ids:  # 16 silent frames, no transcript: never part of the loss
        feats, feat_lens, texts = feats.new_zeros(1, 16, feats.size(2)), torch.tensor([16]), [""]
    feats, feat_lens = feats.to(device), feat_lens.to(device)
    with autocast(device, cfg.precision):
        log_probs, out_lens = step_model(feats, feat_lens)
    targets = [tokenizer.encode(t) for t in texts]
    loss, kept, n_skip = ctc_loss(log_probs, out_lens, targets)
    main_loss = loss.detach()  # what is logged: the last layer's CTC loss, comparable across runs
    if inter_ctc is not None:
        loss = inter_ctc.loss(loss, out_lens, targets)
    if distill is not None and batch.ids:
        with autocast(device, cfg.precision):
            loss = distill.loss(loss, log_probs, out_lens, feats, feat_lens)
    if not batch.ids:  # the dummy utterance counts for nothing
        return loss, main_loss, kept, 0, 0.0
    return loss, main_loss, kept, n_skip, float(out_lens.sum())


def _backward_step(loss: torch.Tensor, global_kept: float, model: CTCModel, optimizer, scaler, cfg: TrainConfig,
                   ctx: Dist) -> tuple[int, int]:
    """Backward, clip, optimiser step unless the gradient norm is not finite.

    Returns:
        (1 if a non-finite norm skipped the step, 1 if the fp16 loss scaler skipped it for an overflow).
    """
    if not global_kept:
        return 0, 0
    scaled = loss * (ctx.world_size / global_kept)
    if scaler is None:
        scaled.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        if torch.isfinite(grad_norm):
            optimizer.step()
            return 0, 0
        log.warning("non-finite gradient norm (%s): step skipped", float(grad_norm))
        return 1, 0
    scaler.scale(scaled).backward()
    scaler.unscale_(optimizer)
    try:
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        scaler.step(optimizer)  # skips the update when unscale_ found an inf/NaN gradient
    finally:
        scaler.update()  # lowers the scale after an overflow; after an OOM too, or the next unscale_ raises
    return 0, int(not torch.isfinite(grad_norm))


def _free_memory(optimizer, device: torch.device) -> None:
    """After an out-of-memory batch: drop its gradients and hand cached CUDA blocks back."""
    optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _scaler_skip_run(run: int, skipped: int, scale: float, warn_after: int) -> int:
    """The run of consecutive fp16 loss-scaler skips after this step; warns once when it reaches ``warn_after``.

    One skip is routine: the scaler met an overflow and halved its scale. A run of them means the
    gradients are not finite at any scale (a NaN loss, a diverged model).
    """
    run = run + 1 if skipped else 0
    if run == warn_after:
        log.warning("%d fp16 steps in a row skipped by the loss scaler (scale now %g): the gradients may be "
                    "non-finite at any scale", run, scale)
    return run
