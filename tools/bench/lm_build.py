"""Throughput and peak memory of ``asr lm build`` on synthetic Zipf text.

Writes SENTENCES random sentences (Zipf-distributed words over a VOCAB-word vocabulary, lengths
1-40, mean ~20 words like LibriSpeech's LM text), then times ``build_lm`` and reports sentences
per second and the peak resident memory. Independent words give more distinct n-grams than real
text of the same size, so memory here is an upper estimate.

    python tools/bench/lm_build.py --sentences 1000000 --order 3 --vocab 200000
"""

from __future__ import annotations

import argparse
import logging
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from asr.decoding.lm import build_lm

log = logging.getLogger("lm_build")


def write_text(path: Path, sentences: int, vocab: int, seed: int = 0) -> int:
    """Write ``sentences`` lines of Zipf words; returns the number of words written."""
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(vocab)], dtype=object)
    total = 0
    with open(path, "w") as f:
        for start in range(0, sentences, 100_000):
            n = min(100_000, sentences - start)
            lens = rng.integers(1, 41, n)
            ids = np.minimum(rng.zipf(1.2, lens.sum()) - 1, vocab - 1)
            tokens = words[ids]
            bounds = np.concatenate(([0], np.cumsum(lens)))
            f.write("".join(" ".join(tokens[a:b]) + "\n" for a, b in zip(bounds[:-1], bounds[1:])))
            total += int(lens.sum())
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=1_000_000)
    parser.add_argument("--vocab", type=int, default=200_000)
    parser.add_argument("--order", type=int, default=3)
    parser.add_argument("--prune-singletons", action="store_true")
    parser.add_argument("--work-dir", type=Path, default=None, help="default: a temporary directory")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        text, arpa = Path(tmp) / "text.txt", Path(tmp) / "lm.arpa"
        words = write_text(text, args.sentences, args.vocab)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        sizes = build_lm(text, arpa, args.order, args.prune_singletons)
        seconds = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        log.warning("%d sentences, %d words, order %d%s: %.1f s, %.0f sentences/s, n-grams %s, "
                    "peak RSS %.0f MB (%.0f MB before estimation), ARPA %.0f MB",
                    args.sentences, words, args.order, " pruned" if args.prune_singletons else "", seconds,
                    args.sentences / seconds, "/".join(map(str, sizes.values())), peak_mb, rss_before / 1024,
                    arpa.stat().st_size / 2**20)


if __name__ == "__main__":
    main()
