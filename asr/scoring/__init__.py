"""Scoring: sclite-identical alignment, text normalisation, reports and significance tests."""
