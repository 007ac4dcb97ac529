"""What every corpus preparation writes per split (the cut manifest, Kaldi ``text`` and ``utt2spk``), and
the speaker-disjoint hold-out of dev (and test) speakers."""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from pathlib import Path

from lhotse import CutSet
from lhotse.qa import validate

__all__ = ["write_split", "hold_out"]

log = logging.getLogger(__name__)


def hold_out(speakers: Sequence[str], fractions: Sequence[float], seed: int) -> list[set[str]]:
    """Disjoint random sets of ``speakers``, one per fraction (each at least one speaker when its fraction > 0).

    The draws are ``random.Random(seed).sample`` from the sorted speakers, one set after the other,
    so the first set does not depend on the later fractions.

    Raises:
        ValueError: no speaker would be left for training.
    """
    remaining = sorted(set(speakers))
    counts = [max(1, round(f * len(remaining))) if f > 0 else 0 for f in fractions]
    if sum(counts) >= len(remaining):
        raise ValueError(f"{len(remaining)} speakers, too few to hold out {' + '.join(map(str, counts))}")
    rng = random.Random(seed)
    held = []
    for count in counts:
        chosen = set(rng.sample(remaining, count))
        held.append(chosen)
        remaining = [s for s in remaining if s not in chosen]
    return held


def write_split(cuts: CutSet, out_dir: Path, corpus: str, name: str, note: str = "") -> None:
    """Validate ``cuts``; write ``CORPUS_cuts_NAME.jsonl.gz``, ``text_NAME`` and ``utt2spk_NAME``; log a summary."""
    try:
        validate(cuts)
    except AssertionError as err:  # lhotse checks with bare asserts
        raise ValueError(f"{corpus} {name}: invalid manifest ({err})") from None
    cuts.to_file(out_dir / f"{corpus}_cuts_{name}.jsonl.gz")
    with open(out_dir / f"text_{name}", "w") as text, open(out_dir / f"utt2spk_{name}", "w") as utt2spk:
        for cut in cuts:
            text.write(f"{cut.id} {cut.supervisions[0].text}\n")
            utt2spk.write(f"{cut.id} {cut.supervisions[0].speaker}\n")
    num_speakers = len({c.supervisions[0].speaker for c in cuts})
    hours = sum(c.duration for c in cuts) / 3600
    log.info("%s %s: %d utterances, %d speakers, %.2f h%s", corpus, name, len(cuts), num_speakers, hours, note)
