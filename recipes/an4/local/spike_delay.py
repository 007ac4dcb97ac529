"""How many frames later a student CTC model emits each reference token than its teacher does.

Both models are force-aligned to the reference transcripts of a cut manifest (torchaudio's
``forced_align``); a token's spike is the first frame of its span. The delays (student frame
minus teacher frame, in output frames of the shared frame rate) are what ``distill_shift``
compensates when a unidirectional student learns a bidirectional teacher's posteriors. Choose it
on dev, never on test:

    python local/spike_delay.py exp-s0/model.pt exp-uni/model.pt data/manifests/an4_cuts_dev.jsonl.gz
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter

import numpy as np
import torch
import torchaudio.functional as AF

from asr.data.cuts import load_cuts
from asr.decoding.tune import cut_emissions
from asr.model.files import load_float_model


def token_starts(emission: np.ndarray, targets: list[int], blank: int) -> list[int]:
    """(T, V) log-probs of one utterance -> the first frame of each target token on its best CTC path."""
    labels, scores = AF.forced_align(torch.from_numpy(emission)[None], torch.tensor([targets], dtype=torch.int32),
                                     blank=blank)  # (1, T) frame labels
    return [span.start for span in AF.merge_tokens(labels[0], scores[0].exp(), blank=blank)]


def spike_delays(teacher: list[np.ndarray], student: list[np.ndarray], targets: list[list[int]],
                 blank: int) -> list[int]:
    """Student minus teacher spike frame of every token of every utterance (the same utterances in order)."""
    delays = []
    for t_emission, s_emission, tokens in zip(teacher, student, targets):
        if tokens and 2 * len(tokens) <= min(len(t_emission), len(s_emission)):  # room for any repeats
            delays += [s - t for t, s in zip(token_starts(t_emission, tokens, blank),
                                             token_starts(s_emission, tokens, blank))]
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("teacher", help="float model: .pt file or safetensors model folder")
    parser.add_argument("student", help="model file or folder at the teacher's frame rate and units")
    parser.add_argument("cuts", help="cut manifest with transcripts (dev)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cuts = load_cuts(args.cuts)
    outputs, units = [], []
    for path in (args.teacher, args.student):
        model, tokenizer = load_float_model(path)
        units.append(list(tokenizer.units))
        if units[0] != units[-1]:  # the targets below are the student's unit ids
            raise SystemExit(f"{path}: its {len(units[-1])} units differ from the teacher's {len(units[0])}")
        ids, refs, emissions = cut_emissions(model, cuts)
        outputs.append(dict(zip(ids, emissions)))
    targets = [[u for u in tokenizer.encode(refs[i]) if u != tokenizer.blank_id] for i in ids]
    delays = spike_delays([outputs[0][i] for i in ids], [outputs[1][i] for i in ids], targets, tokenizer.blank_id)
    counts = Counter(delays)
    print(f"{len(delays)} tokens of {len(ids)} utterances: student minus teacher spike frame "
          f"mean {statistics.mean(delays):.2f}, median {statistics.median(delays):g}")
    for delay in sorted(counts):
        print(f"{delay:+4d} {counts[delay]:6d} {100 * counts[delay] / len(delays):5.1f}%")


if __name__ == "__main__":
    main()
