"""``asr package``: a trained model as a self-contained folder that anyone can load, with a model card.

The folder layout is ``asr.model.files``' (config.json, model.safetensors or model.onnx, tokenizer
file); ``package_model`` adds the LM, lexicon and tuned ``lm-params.yaml`` when there are any,
and a generated ``README.md``: architecture, parameters, training data and hours, the measured
WER/CER table with the command that reproduces it, the data licence, intended use and limits.
The folder is written next to ``out`` and renamed into place, so a failure leaves no half folder.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from ..config import ExportConfig, PackageConfig
from ..data.cuts import load_cuts
from ..decoding.resolve import LM_PARAMS_FILE, LMParams, default_params_path, read_lm_params, write_lm_params
from ..model.checkpoint import CheckpointError
from ..model.files import (CONFIG_FILE, MODEL_DIR_FORMAT, load_acoustic_model, load_float_model, quantize_int8,
                           write_model_dir)
from .export import check_onnx, onnx_bytes
from ..model.onnx_model import OnnxModel

__all__ = ["CORPUS_LICENCES", "package_model", "model_card"]

log = logging.getLogger(__name__)

# What a model card says about the data's terms; other corpora: "unknown", to be stated by the publisher.
CORPUS_LICENCES = {
    "an4": "CMU AN4 database (Carnegie Mellon University), distributed free of charge by CMU; see its README "
           "for the terms",
    "librispeech": "LibriSpeech (openslr.org/12), CC BY 4.0",
    "timit": "TIMIT (LDC93S1), LDC User Agreement: the audio may not be redistributed; check that the "
             "agreement allows publishing models trained on it",
}


def _source_model(source: Path) -> Path:
    """The model file or folder inside ``source`` (an experiment directory gives EXP/model.pt)."""
    if source.is_dir() and not (source / CONFIG_FILE).is_file():
        model = source / "model.pt"
        if not model.is_file():
            raise CheckpointError(f"{source}: neither a model folder nor an experiment directory with model.pt "
                                  "(run 'asr average' first)")
        return model
    return source


def _decoding_files(model_path: Path, lm, lexicon, lm_params) -> tuple[Path | None, Path | None, dict, float]:
    """(LM, lexicon, tuned values, dev WER): the given files, completed from an lm-params.yaml (given or beside
    the model) or from the source model folder."""
    params_path = Path(lm_params) if lm_params is not None else None
    if params_path is None:
        if model_path.is_dir():
            _, _, extras = load_acoustic_model(model_path)
            lm = lm or extras.lm
            lexicon = lexicon or extras.lexicon
            return (Path(lm) if lm else None, Path(lexicon) if lexicon else None,
                    extras.decoding if (lm or lexicon) else {}, float("nan"))
        default = default_params_path(model_path)
        params_path = default if default.is_file() else None
    tuned: dict = {}
    dev_wer = float("nan")
    if params_path is not None:
        if not params_path.is_file():
            raise FileNotFoundError(f"{params_path}: no such LM parameter file")
        params = read_lm_params(params_path)
        tuned = {"lm_weight": params.lm_weight, "word_score": params.word_score, "beam_size": params.beam_size,
                 "beam_threshold": params.beam_threshold}
        dev_wer = params.dev_wer
        lm = lm or _tuned_file(params.lm, params_path)
        lexicon = lexicon or (_tuned_file(params.lexicon, params_path) if params.lexicon else None)
    for path in (lm, lexicon):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such file")
    return (Path(lm) if lm else None, Path(lexicon) if lexicon else None, tuned if (lm or lexicon) else {},
            dev_wer)


def _tuned_file(name: str, params_path: Path) -> Path:
    """A file named in lm-params.yaml: as written (relative to where 'asr tune' ran), else beside the file."""
    for candidate in (Path(name), params_path.parent / name, params_path.parent / Path(name).name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{params_path}: names {name}, which does not exist (give --lm / --lexicon)")


def package_model(source: str | Path, out: str | Path, *, weights: str = PackageConfig.weights,
                  int8: bool = PackageConfig.int8, lm: str | Path | None = None, lexicon: str | Path | None = None,
                  lm_params: str | Path | None = None, train_cuts: str | Path | None = None,
                  results: str | Path | None = None) -> Path:
    """Write the model folder ``out`` from ``source`` and return it.

    Args:
        source: a ``.pt`` model file, an experiment directory (its ``model.pt``), or a float model folder.
        weights: ``"safetensors"`` or ``"onnx"``; ``int8``: dynamic int8 weights (see ``asr.model.files``).
        lm, lexicon: files copied into the folder for beam-lm search.
        lm_params: an ``lm-params.yaml`` from ``asr tune`` (default: the one beside the model, if any); it
            supplies the tuned values and, unless given, the LM and lexicon.
        train_cuts: the training manifest, for the card's data description and hours.
        results: a Markdown WER table for the card (default: ``decode/results.md`` beside the model, if any).

    Raises:
        CheckpointError, FileNotFoundError, ValueError: one line naming the file; ``out`` is left as it was.
    """
    if weights not in ("safetensors", "onnx"):
        raise ValueError(f"weights: expected 'safetensors' or 'onnx', got {weights!r}")
    out = Path(out)
    if out.exists() and not (out / CONFIG_FILE).is_file() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out}: exists and is not a model folder; give a new or empty folder")
    model_path = _source_model(Path(source))
    model, tokenizer = load_float_model(model_path)
    lm, lexicon, tuned, dev_wer = _decoding_files(model_path, lm, lexicon, lm_params)
    results = Path(results) if results else model_path.parent / "decode" / "results.md"
    if not results.is_file():
        results = None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        decoding = dict(tuned)
        if lm is not None:
            decoding["lm"] = "lm" + ("".join(lm.suffixes) or ".arpa")  # keeps .arpa / .bin / .arpa.gz
            shutil.copyfile(lm, tmp / decoding["lm"])
        if lexicon is not None:
            decoding["lexicon"] = "lexicon.txt"
            shutil.copyfile(lexicon, tmp / decoding["lexicon"])
        if tuned:
            decoding["lm_params"] = LM_PARAMS_FILE
            _write_params(tmp / LM_PARAMS_FILE, decoding, dev_wer)
        quantized = quantize_int8(model) if int8 and weights == "safetensors" else model
        write_model_dir(quantized, tokenizer, tmp, weights=weights, quantization="int8" if int8 else None,
                        decoding=decoding)
        if weights == "onnx":
            _write_onnx(model, tokenizer, tmp / "model.onnx", int8)
        (tmp / "README.md").write_text(model_card(model, tokenizer, tmp, train_cuts, results), encoding="utf-8")
        load_acoustic_model(tmp)  # the folder loads as a user would load it
        for path in tmp.iterdir():
            os.chmod(path, 0o644)  # safetensors and mkstemp create owner-only files; a model is for sharing
        os.chmod(tmp, 0o755)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("wrote model folder %s (%s%s)", out, weights, ", int8" if int8 else "")
    return out


def _write_params(path: Path, decoding: dict, dev_wer: float) -> None:
    """lm-params.yaml whose lm/lexicon name the folder's own copies (relative to the folder)."""
    values = {k: decoding[k] for k in ("lm_weight", "word_score", "beam_size", "beam_threshold")}
    write_lm_params(LMParams(lm=decoding.get("lm", ""), lexicon=decoding.get("lexicon"), dev_wer=dev_wer, **values),
                    path)


def _write_onnx(model, tokenizer, path: Path, int8: bool) -> None:
    path.write_bytes(onnx_bytes(model, tokenizer, ExportConfig.opset, int8))
    diff, padding = check_onnx(model, OnnxModel(path, model.cfg, model.vocab_size))
    if not int8 and max(diff, padding) > ExportConfig.atol:
        raise RuntimeError(f"ONNX model differs from the eager model by {diff:.2e} (> {ExportConfig.atol})")


def _training_data(train_cuts: str | Path | None) -> tuple[str, str]:
    """(corpus name, Markdown description) of the training manifest."""
    if train_cuts is None:
        return "", "Not recorded: package with `--train-cuts MANIFEST` to describe it."
    cuts = load_cuts(train_cuts)
    count, seconds, speakers, sources = 0, 0.0, set(), set()
    for cut in cuts:
        count += 1
        seconds += cut.duration
        speakers.update(s.speaker for s in cut.supervisions if s.speaker)
        if count <= 10:
            sources.update(part.lower() for source in cut.recording.sources for part in Path(source.source).parts)
    prefix = Path(train_cuts).name.split("_")[0].lower()
    corpus = prefix if prefix in CORPUS_LICENCES else next((c for c in CORPUS_LICENCES if c in sources), "")
    return corpus, (f"`{Path(train_cuts).name}`: {count} utterances, {seconds / 3600:.2f} hours, "
                    f"{len(speakers)} speakers{f' ({corpus})' if corpus else ''}.")


def model_card(model, tokenizer, folder: Path, train_cuts: str | Path | None, results: Path | None) -> str:
    """The README.md of a model folder (``folder`` holds everything else already)."""
    import json

    cfg, enc, sub = model.cfg, model.cfg.encoder, model.cfg.subsampling
    config = json.loads((folder / CONFIG_FILE).read_text())
    params = sum(p.numel() for p in model.parameters())
    weights_file = folder / config["weights"]
    direction = "bidirectional " if enc.bidirectional else ""
    projection = f", projection to {enc.projection_size}" if enc.projection_size else ""
    corpus, data = _training_data(train_cuts)
    licence = CORPUS_LICENCES.get(corpus, "unknown: state the training data's licence before publishing")
    decoding = config["decoding"]
    lines = [
        f"# {enc.num_layers}×{enc.hidden_size} {direction}{enc.cell.upper()} CTC model ({tokenizer.kind} units)",
        "",
        f"Written by `asr package` (format `{MODEL_DIR_FORMAT}`). Load it with",
        "`asr.model.files.load_acoustic_model(\"PATH\")`, or transcribe with `asr transcribe PATH audio.wav`.",
        "",
        "## Model",
        "",
        "| | |",
        "|---|---|",
        f"| architecture | global CMVN, ×{sub.factor} {sub.kind} subsampling, {enc.num_layers} {direction}"
        f"{enc.cell.upper()} layers of {enc.hidden_size} units{projection}, linear, CTC |",
        f"| parameters | {params / 1e6:.2f} M |",
        f"| units | {len(tokenizer.units)} ({tokenizer.kind}, blank first) |",
        f"| frontend | {cfg.features.num_mels}-dim log-mel, {cfg.features.win_ms:g} ms window, "
        f"{cfg.features.hop_ms:g} ms hop, {cfg.features.sample_rate} Hz (computed in PyTorch/torchaudio) |",
        f"| weights | `{weights_file.name}`, {config['quantization'] or 'float32'}, "
        f"{weights_file.stat().st_size / 1e6:.1f} MB |",
    ]
    if decoding.get("lm") or decoding.get("lexicon"):
        tuned = ", ".join(f"{k} {decoding[k]}" for k in ("lm_weight", "word_score", "beam_size") if k in decoding)
        files = ", ".join(f"`{decoding[k]}`" for k in ("lm", "lexicon", "lm_params") if decoding.get(k))
        lines.append(f"| beam-lm decoding | {files}{'; tuned on dev: ' + tuned if tuned else ''} |")
    lines += ["", "## Training data", "", data, "", f"Licence of the data: {licence}.", "", "## Results", ""]
    if results is not None:
        lines += [f"From `{results.name}` (written by `asr score`):", "", results.read_text(encoding="utf-8").strip(),
                  ""]
        recipe = Path(__file__).resolve().parents[2] / "recipes" / corpus / "run.sh"
        if corpus and recipe.is_file():
            lines += ["Reproduce with the recipe (all stages, from an empty directory):", "", "```bash",
                      f"bash recipes/{corpus}/run.sh --data-dir /path/to/{corpus}", "```", ""]
    else:
        lines += ["No scores recorded: package with `--results results.md` (from `asr score`).", ""]
    lines += [
        "## Intended use and limits",
        "",
        f"- Speech like the training data{f' ({corpus})' if corpus else ''}: same language, recording conditions "
        f"and vocabulary; expect much higher error rates elsewhere.",
        f"- Audio is resampled to {cfg.features.sample_rate} Hz mono; output is unpunctuated text in the training "
        "transcripts' casing.",
        "- With the lexicon, beam-lm search only outputs lexicon words; greedy search can spell new words.",
        "- Int8 weights: activations are quantized per batch, so an utterance's output depends slightly on the "
        "other utterances of its batch." if config["quantization"] else
        "- Outputs do not depend on the batch an utterance is decoded in.",
        "- Not for decisions about people without human review; error rates differ across speakers.",
        "",
    ]
    return "\n".join(lines)
