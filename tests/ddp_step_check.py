"""Two training steps of ``asr.training.loop._train_step`` on fixed global batches, alone or under torchrun.

    python tests/ddp_step_check.py CUTS OUT.pt [oom]                      # one process, whole batches
    torchrun --standalone --nproc-per-node 2 tests/ddp_step_check.py CUTS OUT.pt [oom]   # rank r: cuts r::2

Rank 0 saves the summed losses of each step and the final weights; tests/test_ddp.py compares
the two runs. Dropout and SpecAugment are off, so both runs see the same arithmetic; plain SGD without
clipping keeps the weights proportional to the gradients, so a wrong loss normalisation shows. With
``oom``, the first forward pass of the last rank raises an out-of-memory error: every rank must
skip that step, which leaves the weights of a single process that skipped it.
"""

from __future__ import annotations

import sys

import torch
from lhotse import CutSet

from asr.config import load_config
from asr.data.cuts import FeatureBatcher, cut_text, load_cuts
from asr.training.distributed import all_sum, init_distributed
from asr.model.ctc import CTCModel
from asr.data.tokenizer import build_tokenizer
from asr.training.loop import _train_step, compute_cmvn

OVERRIDES = ["model.encoder.num_layers=2", "model.encoder.hidden_size=24", "model.encoder.dropout=0.0",
             "model.specaug.freq_masks=0", "model.specaug.time_masks=0", "optim.lr=0.1", "optim.grad_clip=1e6"]


def _fail_first_forward() -> None:
    real_forward = CTCModel.forward
    calls = {"n": 0}

    def forward(self, feats, feat_lens):
        calls["n"] += 1
        if calls["n"] == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real_forward(self, feats, feat_lens)

    CTCModel.forward = forward


def main(cuts_path: str, out_path: str, mode: str = "") -> None:
    torch.set_num_threads(1)
    cfg = load_config(None, OVERRIDES)
    device = torch.device("cpu")
    ctx = init_distributed(device)
    cuts = list(load_cuts(cuts_path))[:8]
    batcher = FeatureBatcher(cfg.model.features)
    tokenizer = build_tokenizer(cfg.tokenizer, (cut_text(c) for c in cuts))
    torch.manual_seed(0)
    model = CTCModel(cfg.model, len(tokenizer.units))
    model.cmvn.set_stats(*compute_cmvn(CutSet.from_cuts(cuts), batcher, 100))
    step_model = torch.nn.parallel.DistributedDataParallel(model) if ctx.enabled else model
    # SGD, not AdamW: Adam's first step is about lr * sign(grad), so a gradient element near zero turns
    # the last-bit differences of gloo's all-reduce into weight differences of up to lr
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.optim.lr)
    model.train()
    if mode == "oom" and ctx.rank == ctx.world_size - 1:
        _fail_first_forward()
    losses, ooms = [], []
    for global_batch in (cuts[:4], cuts[4:]):
        mine = CutSet.from_cuts(global_batch[ctx.rank :: ctx.world_size])
        stats, _ = _train_step(step_model, model, batcher(mine), tokenizer, optimizer, None, cfg, device, ctx, False)
        loss, oom = all_sum([stats.loss, stats.oom_batches], ctx, device)
        losses.append(loss)
        ooms.append(oom)
    if ctx.is_main:
        torch.save({"losses": losses, "oom_batches": ooms, "state_dict": model.state_dict()}, out_path)


if __name__ == "__main__":
    main(*sys.argv[1:])
