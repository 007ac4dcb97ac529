"""What every corpus preparation writes per split: the cut manifest, Kaldi ``text`` and ``utt2spk``."""

from __future__ import annotations

import logging
from pathlib import Path

from lhotse import CutSet
from lhotse.qa import validate

__all__ = ["write_split"]

log = logging.getLogger(__name__)


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
