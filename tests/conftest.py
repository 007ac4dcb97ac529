"""Shared fixtures: the real AN4 corpus and small AN4 manifests built once per session (helpers: helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import corpus_dir


@pytest.fixture(scope="session")
def an4_dir() -> Path:
    return corpus_dir("an4")


@pytest.fixture(scope="session")
def an4_manifests(an4_dir, tmp_path_factory) -> Path:
    """Full AN4 preparation (train/dev/test cut manifests), done once per test session."""
    from asr.data.corpora.an4 import prepare_an4

    out = tmp_path_factory.mktemp("an4_manifests")
    prepare_an4(an4_dir, out)
    return out


@pytest.fixture(scope="session")
def small_sets(an4_manifests, tmp_path_factory):
    """12 and 20 real AN4 training utterances as their own manifests."""
    from asr.data.cuts import load_cuts

    out = tmp_path_factory.mktemp("subsets")
    cuts = load_cuts(an4_manifests / "an4_cuts_train.jsonl.gz")
    cuts.subset(first=12).to_file(out / "cuts12.jsonl.gz")
    cuts.filter(lambda c: c.duration < 3.5).subset(first=20).to_file(out / "cuts20.jsonl.gz")
    return out


# Long tests that live in files edited by others, marked here (seconds measured with all of
# tests/test_{train,train_faults,recipe,ddp,timit,librispeech}.py, load average about 10 on 2 cores).
SLOW = {
    "tests/test_librispeech.py::test_librispeech_recipe_stages_end_to_end": 449,
    "tests/test_timit.py::test_timit_recipe_end_to_end": 314,
}


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items):
    """Mark the ``SLOW`` tests ``slow``; a listed test that its module lacks is an error."""
    modules = {}
    for item in items:
        modules[item.nodeid.split("::")[0]] = item.module
        if item.nodeid in SLOW:
            item.add_marker(pytest.mark.slow)
    missing = [node for node in SLOW if node.split("::")[0] in modules
               and not hasattr(modules[node.split("::")[0]], node.split("::")[1])]
    if missing:
        raise pytest.UsageError(f"conftest.SLOW lists tests that do not exist: {missing}")
