"""The acoustic model: subsampling, recurrent encoder, CTC output layer, and model files."""
