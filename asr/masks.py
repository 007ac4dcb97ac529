"""The one helper that turns lengths into padding masks."""

from torch import Tensor
import torch

__all__ = ["make_pad_mask"]


def make_pad_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """Boolean mask, True at padding.

    Args:
        lengths (Tensor): (B,) int64, valid frames per sequence.
        max_len (int, optional): T of the mask; defaults to ``lengths.max()``.

    Returns:
        Tensor: (B, T) bool, ``mask[b, t] = t >= lengths[b]``.

    >>> make_pad_mask(torch.tensor([1, 3]))
    tensor([[False,  True,  True],
            [False, False, False]])
    """
    max_len = int(lengths.max()) if max_len is None else max_len
    steps = torch.arange(max_len, device=lengths.device)
    return steps[None, :] >= lengths[:, None]
