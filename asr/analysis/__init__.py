"""Looking inside trained models: gradient flow over time and gate activations."""
