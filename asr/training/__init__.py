"""The one training loop, torchrun helpers and training curves."""
