"""Corpus download and preparation: one module per corpus, each writing lhotse cut manifests."""
