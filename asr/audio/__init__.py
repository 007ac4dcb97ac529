"""Audio in: reading files (soundfile), log-mel features, CMVN and SpecAugment, speed perturbation,
silence segmentation."""
