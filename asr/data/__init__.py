"""Cuts and batches: lhotse manifests to padded log-mel batches, tokenizers (characters, BPE, phones),
corpus preparation."""
