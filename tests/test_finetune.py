"""Fine-tuning onto new data and new units: init_units=data copies the output rows of shared units,
init_cmvn, init_freeze_layers/epochs; a trained model starts a corpus with another character set lower than scratch."""

from __future__ import annotations

import gzip
import json

import pytest
import torch

from asr.config import EncoderConfig, ModelConfig, SubsamplingConfig, load_config
from asr.data.cuts import scan_manifest
from asr.model.checkpoint import load_file, load_model
from asr.model.ctc import CTCModel
from asr.model.transfer import set_frozen, transfer_units
from asr.training.loop import train
from helpers import TINY, log_rows

# The new corpus: AN4 audio whose transcripts spell E as É and O as 0 (two units gone, two new).
RESPELL = str.maketrans({"E": "É", "O": "0"})


@pytest.fixture(scope="module")
def respelled(small_sets, tmp_path_factory):
    out = tmp_path_factory.mktemp("respelled") / "cuts20.jsonl.gz"
    with gzip.open(small_sets / "cuts20.jsonl.gz", "rt") as f, gzip.open(out, "wt") as w:
        for line in f:
            cut = json.loads(line)
            for sup in cut["supervisions"]:
                sup["text"] = sup["text"].translate(RESPELL)
            w.write(json.dumps(cut) + "\n")
    return out


@pytest.fixture(scope="module")
def an4_model(small_sets, tmp_path_factory):
    """A tiny model trained 4 epochs on 20 AN4 utterances."""
    cuts = small_sets / "cuts20.jsonl.gz"
    exp = tmp_path_factory.mktemp("an4_tiny")
    return train(load_config(None, TINY + ["epochs=4", "device=cpu", "optim.lr=0.004"]), cuts, cuts, exp)


def test_scan_manifest_reads_escaped_transcripts(respelled, tmp_path):
    """Training's units come from ``scan_manifest``: JSON escapes (\\u00c9, \\") must survive it."""
    assert scan_manifest(respelled, texts=True).texts[0] == "YÉS"  # written with ensure_ascii
    path = tmp_path / "quoted.jsonl"
    path.write_text(json.dumps({"id": "q", "duration": 1.0, "supervisions": [{"text": 'SAY "NO" \\ OK'}]}) + "\n")
    assert scan_manifest(path, texts=True).texts == ['SAY "NO" \\ OK']


def test_transfer_units_copies_shared_rows_and_the_encoder():
    torch.manual_seed(0)
    cfg = ModelConfig(encoder=EncoderConfig(num_layers=2, hidden_size=16))
    old_units = ["<blk>", "|", "A", "B", "E"]
    source = CTCModel(cfg, len(old_units))
    units = ["<blk>", "|", "3", "A", "B", "É"]
    model, shared = transfer_units(source, old_units, cfg, units)
    assert shared == 4
    for new, old in [(0, 0), (1, 1), (3, 2), (4, 3)]:
        assert torch.equal(model.output.weight[new], source.output.weight[old])
        assert model.output.bias[new] == source.output.bias[old]
    assert not torch.equal(model.output.weight[2], source.output.weight[2])
    for key, value in source.state_dict().items():
        if not key.startswith("output."):
            assert torch.equal(value, model.state_dict()[key]), key
    wider = ModelConfig(encoder=EncoderConfig(num_layers=2, hidden_size=24))
    with pytest.raises(ValueError, match=r"encoder parameter encoder.layers.0.bwd.bias_hh_l0: \(64,\) in the "
                                         r"source model, \(96,\) in the config"):
        transfer_units(source, old_units, wider, units)


def test_set_frozen_fixes_subsampling_and_lowest_layers_only():
    model = CTCModel(ModelConfig(subsampling=SubsamplingConfig(kind="conv"),
                                 encoder=EncoderConfig(num_layers=3, hidden_size=8, projection_size=6)), 5)
    set_frozen(model, 2, True)
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    lowest = ("subsampling.", "encoder.layers.0.", "encoder.layers.1.", "encoder.projections.0.",
              "encoder.projections.1.")
    assert frozen == {n for n, _ in model.named_parameters() if n.startswith(lowest)}
    assert any(n.startswith("subsampling.") for n in frozen)
    set_frozen(model, 2, False)
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="init_freeze_layers: expected 0 to 3, got 4"):
        set_frozen(model, 4, True)


def test_init_units_data_trains_new_units_from_a_model_with_other_ones(an4_model, respelled, tmp_path):
    """lr 0: the run's model is its starting point; the shared rows and CMVN are the source's, É and 0 are new."""
    start = train(load_config(None, TINY + ["epochs=1", "device=cpu", f"init_from={an4_model}", "init_units=data",
                                            "optim.lr=0.0"]), respelled, respelled, tmp_path / "lr0")
    source, source_tok = load_model(an4_model)
    model, tokenizer = load_model(start)
    assert "É" in tokenizer.units and "0" in tokenizer.units and "E" not in tokenizer.units
    assert "E" in source_tok.units
    for i, unit in enumerate(tokenizer.units):
        if unit in source_tok.units:
            assert torch.equal(model.output.weight[i], source.output.weight[source_tok.units.index(unit)]), unit
    assert torch.equal(model.cmvn.mean, source.cmvn.mean)
    with pytest.raises(ValueError, match="init_units: expected 'model' or 'data', got 'new'"):
        train(load_config(None, TINY + ["epochs=1", f"init_from={an4_model}", "init_units=new"]), respelled,
              respelled, tmp_path / "bad")


def test_fine_tuning_starts_lower_than_scratch_and_thaws_after_the_frozen_epochs(an4_model, respelled, tmp_path):
    common = TINY + ["epochs=2", "device=cpu", "optim.lr=0.004"]
    scratch = tmp_path / "scratch"
    train(load_config(None, common), respelled, respelled, scratch)
    tuned = tmp_path / "tuned"
    train(load_config(None, common + [f"init_from={an4_model}", "init_units=data", "init_cmvn=data",
                                      "data.cmvn_max_utts=3", "init_freeze_layers=1", "init_freeze_epochs=1"]),
          respelled, respelled, tuned)
    first = {name: float(log_rows(exp)[0]["train_loss"]) for name, exp in [("scratch", scratch), ("tuned", tuned)]}
    assert first["tuned"] < first["scratch"], first
    source = load_file(an4_model)["state_dict"]
    epochs = [load_file(tuned / "checkpoints" / f"epoch-00{n}.pt")["state_dict"] for n in (1, 2)]
    layer0 = [k for k in source if k.startswith("encoder.layers.0.")]
    assert all(torch.equal(epochs[0][k], source[k]) for k in layer0)  # frozen in epoch 1
    assert not all(torch.equal(epochs[1][k], source[k]) for k in layer0)  # trained in epoch 2
    assert not torch.equal(epochs[0]["cmvn.mean"], source["cmvn.mean"])  # init_cmvn=data: from 3 cuts, not 20
