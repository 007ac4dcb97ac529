"""Moving a trained model onto new units and freezing its lower layers: fine-tuning on new data.

A model trained on one corpus keeps its frontend and encoder; only the output layer depends on the
unit set. ``transfer_units`` builds a model for new units whose output rows of the units both sets
share are copied (the blank always is) and whose other rows start as a new layer's;
``set_frozen`` fixes the subsampling and the lowest encoder layers (their parameters get no
gradients, so the optimiser leaves them as they are) for the first epochs of a fine-tuning run.
"""

from __future__ import annotations

import torch

from ..config import ModelConfig
from .ctc import CTCModel

__all__ = ["transfer_units", "set_frozen"]


def transfer_units(source: CTCModel, source_units: list[str], cfg: ModelConfig, units: list[str]
                   ) -> tuple[CTCModel, int]:
    """A ``cfg`` model over ``units`` holding ``source``'s weights below the output layer.

    Args:
        source: the trained model; its architecture must match ``cfg`` parameter for parameter below
            the output layer (fields that change no weight, such as dropout, may differ).
        source_units: ``source``'s units, index = output row.
        cfg: the new model's configuration.
        units: the new units (index 0 the blank, as in every tokenizer).

    Returns:
        (the new model, the number of units whose output rows were copied).

    Raises:
        ValueError: the encoders do not match (naming the first mismatching parameter).
    """
    model = CTCModel(cfg, len(units))
    ours = model.state_dict()
    theirs = {k: v for k, v in source.state_dict().items() if not k.startswith("output.")}
    for key in sorted(set(ours) | set(theirs)):
        if key.startswith("output."):
            continue
        if key not in theirs or key not in ours or theirs[key].shape != ours[key].shape:
            shapes = [tuple(d[key].shape) if key in d else "absent" for d in (theirs, ours)]
            raise ValueError(f"encoder parameter {key}: {shapes[0]} in the source model, {shapes[1]} in the config")
    model.load_state_dict(theirs, strict=False)
    row = {unit: i for i, unit in enumerate(source_units)}
    pairs = [(i, row[unit]) for i, unit in enumerate(units) if unit in row]
    new_rows, old_rows = (list(r) for r in zip(*pairs)) if pairs else ([], [])
    with torch.no_grad():
        model.output.weight[new_rows] = source.output.weight[old_rows]
        model.output.bias[new_rows] = source.output.bias[old_rows]
    return model, len(pairs)


def set_frozen(model: CTCModel, num_layers: int, frozen: bool) -> None:
    """Freeze (or thaw) the subsampling and the lowest ``num_layers`` encoder layers with their projections."""
    if not 0 <= num_layers <= len(model.encoder.layers):
        raise ValueError(f"init_freeze_layers: expected 0 to {len(model.encoder.layers)}, got {num_layers}")
    modules = [model.subsampling, *model.encoder.layers[:num_layers], *model.encoder.projections[:num_layers]]
    for module in modules:
        for param in module.parameters():
            param.requires_grad_(not frozen)
