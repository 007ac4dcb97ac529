"""Sharded ``asr decode`` and ``asr tune``: under torchrun and as a job array, the files of one process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from asr.cli import main
from asr.data.cuts import load_cuts
from helpers import REPO, random_letter_model, word_lm_and_lexicon

OUTPUTS = ["hyp-test-greedy.txt", "hyp-test-greedy.jsonl", "hyp-test-beam-lm.txt", "hyp-test-beam-lm.jsonl",
           "lm-params.yaml"]


def _commands(files, out) -> tuple[list[str], list[str]]:
    """``asr decode`` (greedy and beam-lm) and ``asr tune`` arguments writing into ``out``; 6 s batches."""
    model, cuts, lm, lexicon = files
    common = [str(model), str(cuts), "--lm", str(lm), "--lexicon", str(lexicon), "--num-workers", "0",
              "--max-duration", "6"]
    decode = ["decode", *common, "--method", "greedy", "beam-lm", "--lm-weight", "1", "--word-score", "2",
              "--beam", "8", "--out-dir", str(out)]
    tune = ["tune", *common, "--points", "2", "--beam", "8", "--out", str(out / "lm-params.yaml")]
    return decode, tune


@pytest.fixture(scope="module")
def unsharded(an4_manifests, tmp_path_factory):
    """A random letter model, 8 AN4 test cuts (several batches), an LM and lexicon, and one process's files."""
    out = tmp_path_factory.mktemp("shards")
    word_lm_and_lexicon(random_letter_model(out), an4_manifests / "text_train", out)
    load_cuts(an4_manifests / "an4_cuts_test.jsonl.gz").subset(first=8).to_file(out / "cuts.jsonl.gz")
    files = (out / "model.pt", out / "cuts.jsonl.gz", out / "lm.arpa", out / "lexicon.txt")
    decode, tune = _commands(files, out / "one")
    assert main(decode) == 0 and main(tune) == 0
    return files, {name: (out / "one" / name).read_bytes() for name in OUTPUTS}


def test_decode_and_tune_under_torchrun_write_the_files_of_one_process(unsharded, tmp_path):
    files, expected = unsharded
    decode, tune = _commands(files, tmp_path)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                             str(REPO / "tests" / "shard_check.py"), *decode, "--", *tune],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {name: (tmp_path / name).read_bytes() for name in OUTPUTS} == expected


def test_a_job_array_writes_the_files_of_one_process_when_its_last_shard_is_in(unsharded, tmp_path):
    files, expected = unsharded
    decode, tune = _commands(files, tmp_path)
    assert main([*decode, "--shard", "1/2"]) == 0 and main([*tune, "--shard", "1/2"]) == 0
    assert not any((tmp_path / name).exists() for name in OUTPUTS)  # shard 0 is not in yet
    assert main([*decode, "--shard", "0/2", "--max-duration", "7"]) == 0  # another run's part: not merged with 1/2
    assert not (tmp_path / "hyp-test-greedy.txt").exists()
    assert main([*decode, "--shard", "0/2"]) == 0 and main([*tune, "--shard", "0/2"]) == 0
    assert {name: (tmp_path / name).read_bytes() for name in OUTPUTS} == expected


@pytest.mark.parametrize("spec", ["2/2", "3/2", "1", "a/b"])
def test_a_bad_shard_is_one_error(unsharded, tmp_path, spec, capsys):
    decode, _ = _commands(unsharded[0], tmp_path)
    assert main([*decode, "--shard", spec]) == 1
    assert capsys.readouterr().err == f"asr decode: error: shard: expected I/N with 0 <= I < N (e.g. 0/4), got {spec!r}\n"
