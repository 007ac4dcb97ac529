"""Typed configuration: one dataclass per component, YAML files hold values only.

Every default lives here and only here. ``load_config`` reads a YAML file of values and
applies ``dotted.key=value`` overrides; an unknown key fails at once with its full name.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "FeatureConfig",
    "SpecAugmentConfig",
    "SubsamplingConfig",
    "EncoderConfig",
    "ModelConfig",
    "StreamConfig",
    "ServerConfig",
    "TokenizerConfig",
    "DataConfig",
    "OptimConfig",
    "TrainConfig",
    "HotwordConfig",
    "CalibrationConfig",
    "SearchConfig",
    "DecodeConfig",
    "TuneConfig",
    "LMBuildConfig",
    "SegmentConfig",
    "TranscribeConfig",
    "An4PrepareConfig",
    "TimitPrepareConfig",
    "LibriSpeechPrepareConfig",
    "CustomPrepareConfig",
    "ValidateConfig",
    "AverageConfig",
    "ScoreConfig",
    "ExportConfig",
    "PackageConfig",
    "from_dict",
    "to_dict",
    "load_config",
]


@dataclass
class FeatureConfig:
    sample_rate: int = 16000  # Hz; audio at other rates is resampled to this
    num_mels: int = 80  # log-mel filterbank channels
    win_ms: float = 25.0  # analysis window length
    hop_ms: float = 10.0  # frame shift


@dataclass
class SpecAugmentConfig:
    freq_masks: int = 2  # frequency masks per utterance
    freq_width: int = 15  # widest frequency mask, in mel bins
    time_masks: int = 2  # time masks per utterance
    time_width: int = 40  # widest time mask, in frames
    time_max_ratio: float = 0.2  # a time mask never covers more than this fraction of an utterance


@dataclass
class SubsamplingConfig:
    kind: str = "stack"  # "stack" (concatenate frames), "conv" (strided 1-D convolution) or "conv2d" (2-D, time x frequency)
    factor: int = 3  # frame-rate reduction, 1 to 4
    conv_channels: int = 256  # output channels of the conv subsampling
    conv2d_channels: int = 16  # channels of the conv2d subsampling (output: channels x mel bins / 4)
    conv2d_norm: bool = False  # LayerNorm over each conv2d output frame (its channels x bins), before the encoder


@dataclass
class EncoderConfig:
    cell: str = "lstm"  # "lstm", "gru" or "rnn" (vanilla tanh, the ungated baseline)
    num_layers: int = 3  # stacked recurrent layers
    hidden_size: int = 256  # units per direction
    bidirectional: bool = True  # add a backward direction to every layer
    projection_size: int = 0  # linear projection after each layer; 0 = none
    dropout: float = 0.2  # dropout after each layer (training only)
    lookahead_frames: int = 0  # frames of right context stacked onto each input frame before the first layer; 0 = none
    chunk_frames: int = 0  # LC-BLSTM chunk Nc (frames after subsampling); 0 = full-utterance bidirectional
    right_context: int = 0  # LC-BLSTM right context Nr (frames after subsampling) read by every chunk's window


@dataclass
class ModelConfig:
    features: FeatureConfig = field(default_factory=FeatureConfig)  # log-mel frontend
    specaug: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)  # training-time masking
    subsampling: SubsamplingConfig = field(default_factory=SubsamplingConfig)  # frame-rate reduction
    encoder: EncoderConfig = field(default_factory=EncoderConfig)  # recurrent stack


@dataclass
class StreamConfig:
    endpoint_silence_ms: float = 800.0  # blank-only output this long after speech ends a segment; 0 = off
    max_segment_s: float = 20.0  # a segment is ended after this much audio even without a pause; 0 = no limit
    partial_interval_ms: float = 100.0  # ``partial()`` recomputes the text at most this often (audio time); below every LC-BLSTM chunk here, so it adds no wait
    block_ms: float = 100.0  # ``asr stream``: audio read and fed per step
    pcm_sample_rate: int = 16000  # ``asr stream -``: rate of the raw 16-bit little-endian PCM on stdin


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"  # ``asr serve`` listens here (0.0.0.0: every interface)
    port: int = 2700  # Vosk's port; 0 picks a free one
    sample_rate: int = 16000  # Hz of the PCM of a client that sends no {"config": {"sample_rate": N}}
    min_sample_rate: int = 8000  # lowest client rate accepted (resampled to the model's)
    max_sample_rate: int = 48000  # highest client rate accepted
    max_sessions: int = 64  # open connections; one more is told "server busy" and closed (1013)
    max_frame_bytes: int = 1 << 20  # largest message (32 s of 16 kHz PCM); larger ones close the connection (1009)
    max_frames_per_audio_s: float = 100.0  # frames per second of audio a session may send (10 ms each on average)
    idle_timeout_s: float = 60.0  # a session silent this long is closed; 0 = never
    min_step_ms: float = 50.0  # audio buffered before the model runs: tiny frames cost no model step
    workers: int = 2  # threads running batches of model steps (batches in flight at once)
    torch_threads: int = 1  # torch intra-op threads of each step (the workers give the parallelism)
    max_batch: int = 64  # sessions whose due model steps run as one batch (one encoder forward) at most
    batch_wait_ms: float = 0.0  # a due step waits up to this for others to join (0: batch what queued while busy)
    token: str = ""  # when set, the page, the WebSocket and POST /transcribe need it (?token=, cookie or Bearer)
    max_upload_bytes: int = 200 << 20  # largest POST /transcribe body (413 beyond)
    max_upload_s: float = 3600.0  # longest audio of one upload in seconds (413 beyond)
    max_transcriptions: int = 1  # uploads transcribed at once; one more is told 503 (busy)
    max_head_bytes: int = 16384  # largest HTTP request line and headers (431 beyond)
    max_client_alternatives: int = 20  # largest "max_alternatives" a client may ask for
    max_phrases: int = 1000  # longest "phrase_list" a client may send
    phrase_lm_weight: float = 3.0  # weight of a phrase list's n-gram (AN4 dev grid: tools/bench/phrase_list_an4.py)
    phrase_word_score: float = 5.0  # added per word of a phrase list's search: offsets the LM's cost of a word
    phrase_lm_order: int = 3  # n-gram order of a phrase list's model


@dataclass
class TokenizerConfig:
    kind: str = "char"  # "char" (letters, "|" between words), "bpe" (sentencepiece) or "phone" (space-separated labels)
    vocab_size: int = 256  # sentencepiece vocabulary size (bpe only)


@dataclass
class DataConfig:
    max_duration: float = 120.0  # seconds of audio per training batch
    num_buckets: int = 8  # duration buckets of the sampler
    max_utt_duration: float = 30.0  # longer training utterances are dropped (and counted)
    cmvn_max_utts: int = 2000  # utterances used to estimate global CMVN
    speed_perturb: list[float] = field(default_factory=list)  # extra training copies' speeds, e.g. [0.9, 1.1]; [] off
    eval_max_duration: float = 300.0  # seconds of audio per batch of dev loss/WER and CMVN passes (no gradients)
    num_workers: int = -1  # audio-reading loader processes; -1 = auto: 0 on the CPU, 4 on CUDA (tools/bench/README.md)


@dataclass
class OptimConfig:
    lr: float = 2e-3  # peak learning rate (AdamW)
    weight_decay: float = 1e-2  # AdamW decoupled weight decay
    warmup_steps: int = 200  # linear warm-up from 0 to lr
    hold_fraction: float = 0.3  # keep the peak until this fraction of all steps (CTC blank plateau)
    final_lr_ratio: float = 0.02  # cosine decay ends at lr * this
    grad_clip: float = 5.0  # max global gradient norm


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)  # architecture and frontend
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)  # output units
    data: DataConfig = field(default_factory=DataConfig)  # batching
    optim: OptimConfig = field(default_factory=OptimConfig)  # optimiser and schedule
    epochs: int = 40  # passes over the training set
    init_from: str = ""  # float model (.pt or model folder) whose weights, CMVN and tokenizer a new run starts from; "" = random
    init_units: str = "model"  # init_from: "model" (keep its units) or "data" (units of the training text: new output layer, rows of shared units copied)
    init_cmvn: str = "model"  # init_from: "model" (keep its CMVN statistics) or "data" (recompute them on the training cuts)
    init_freeze_layers: int = 0  # init_from: the subsampling and this many lowest encoder layers stay fixed ...
    init_freeze_epochs: int = 0  # ... for this many first epochs (0: never frozen)
    inter_ctc_layer: int = 0  # InterCTC (Lee & Watanabe 2021): also train this encoder layer (1-based) through the output layer; 0 = off
    inter_ctc_weight: float = 0.3  # InterCTC: loss = (1 - w) * CTC(last layer) + w * CTC(inter_ctc_layer)
    distill_from: str = ""  # float teacher model (.pt or folder) whose frame posteriors the model also learns; "" = off
    distill_weight: float = 0.5  # distillation: loss = (1 - w) * CTC + w * T^2 * KL(teacher || model), summed over frames
    distill_temperature: float = 1.0  # distillation: T, softening both posteriors
    distill_shift: int = 0  # distillation: the model's frame t learns the teacher's frame t - shift (a unidirectional model emits later)
    seed: int = 0  # seeds python, numpy, torch and the sampler
    keep_last: int = 5  # epoch checkpoints kept on disk
    save_every_steps: int = 0  # extra mid-epoch checkpoint interval; 0 = epoch ends only
    max_steps: int = 0  # stop after this many optimiser steps (0 = no limit); resumable
    num_threads: int = 0  # torch intra-op threads; 0 = all cores (shared out among torchrun's local ranks)
    device: str = "auto"  # "cpu", "cuda" or "auto" (cuda when available); torchrun rank r uses cuda:LOCAL_RANK
    precision: str = "fp32"  # "fp32", "bf16" (autocast, CPU/GPU) or "fp16" (autocast + loss scaling, GPU); CTC fp32
    scaler_warn_skips: int = 10  # fp16: warn after this many loss-scaler skips in a row (one is routine; 0 = never)
    log_every: int = 50  # steps between log lines


@dataclass
class HotwordConfig:
    boost: float = 5.0  # score added per hotword occurrence (log-prob units, like word_score); lines may set their own


@dataclass
class CalibrationConfig:
    method: str = "auto"  # "auto" (lowest ECE on a held-out half of dev), "temperature", "platt" or "isotonic"
    bins: int = 10  # equal-width confidence bins of the expected calibration error and reliability diagram
    held_out: float = 0.5  # share of dev utterances that scores the methods when method is "auto"
    seed: int = 0  # picks the held-out utterances


@dataclass
class SearchConfig:
    method: str = "greedy"  # "greedy", "beam" (lexicon-free, no LM) or "beam-lm" (with an LM and/or a lexicon)
    beam_size: int = 16  # hypotheses kept after each frame
    beam_threshold: float = 25.0  # hypotheses scoring this far below the best are dropped
    nbest: int = 1  # hypotheses returned per utterance or segment, best first
    lm: str | None = None  # beam-lm: KenLM model (ARPA or binary) of words, or of the model's units without a lexicon
    lexicon: str | None = None  # beam-lm: WORD<TAB>UNITS file from 'asr lm lexicon'
    lm_weight: float = 2.0  # beam-lm: weight of the LM's natural-log probability
    word_score: float = 0.0  # beam-lm: added for every word (lexicon search only)
    sil_score: float = 0.0  # added for every word separator
    hotwords: str | None = None  # beam-lm with a lexicon: 'WORD [BOOST]' lines, boosted and added to the lexicon


@dataclass
class DecodeConfig:
    name: str = "test"  # set name in the output file names, hyp-NAME-METHOD.{txt,jsonl}
    max_duration: float = 200.0  # seconds of audio per batch when decoding a cut manifest
    num_workers: int = min(2, os.cpu_count() or 1)  # processes running the beam search (0: the main process)


@dataclass
class TuneConfig:
    search: str = "grid"  # "grid" (points x points) or "random" (trials uniform draws)
    lm_weight_range: tuple[float, float] = (0.0, 3.0)  # lowest and highest LM weight tried
    word_score_range: tuple[float, float] = (-2.0, 4.0)  # lowest and highest word score tried
    points: int = 13  # grid: values per axis
    trials: int = 60  # random: points drawn
    seed: int = 0  # random: seed of the draws
    beam_size: int = 50  # wider than decoding's, so the weights are not tuned to search errors
    select: str = "smooth"  # "smooth" (lowest WER of the point and its grid neighbours: the middle of a plateau) or "lowest"


@dataclass
class LMBuildConfig:
    order: int = 3  # n-gram order of ``asr lm build``


@dataclass
class SegmentConfig:
    max_segment: float = 30.0  # seconds decoded at once; shorter files are decoded whole (training cap: 30 s)
    min_silence: float = 0.3  # a pause at least this long ends a segment (shorter ones stay inside)
    threshold_db: float = 15.0  # speech: frames this much louder than the noise floor
    pad: float = 0.2  # silence kept before and after the speech of a segment


@dataclass
class TranscribeConfig:
    batch_size: int = 16  # segments per forward pass
    device: str = "cpu"  # where the model runs (transcribe, decode, tune, Recognizer): "cpu", "cuda", "cuda:1", "auto"
    formats: tuple[str, ...] = ("txt",)  # any of txt, json, srt, vtt


@dataclass
class An4PrepareConfig:
    dev_fraction: float = 0.07  # share of training speakers held out as dev (at least one)
    seed: int = 0  # picks the dev speakers


@dataclass
class TimitPrepareConfig:
    phones: int = 48  # training phone set: 61, 48 (Lee & Hon) or 39


@dataclass
class LibriSpeechPrepareConfig:
    num_jobs: int = 4  # threads reading FLAC headers


@dataclass
class CustomPrepareConfig:
    corpus: str = "custom"  # manifest names: CORPUS_cuts_SPLIT.jsonl.gz
    split: str = ""  # write everything as this one split; "" = hold out dev and test speakers from it
    dev_fraction: float = 0.1  # share of speakers (utterances when speakers are unknown) held out as dev
    test_fraction: float = 0.1  # share held out as test
    seed: int = 0  # picks the held-out speakers
    case: str = "keep"  # transcripts: "keep", "upper" or "lower"
    remove_punct: bool = False  # delete punctuation except word-internal ' and -
    chars: str = ""  # whitelist: utterances with other characters are left out (and counted); "" = any
    num_jobs: int = 4  # threads reading audio headers


@dataclass
class ValidateConfig:
    audio_check: str = "header"  # "none", "exists" (file present), "header" (rate, length), "decode" (read each cut's end)
    duration_tolerance: float = 0.025  # seconds a cut may pass its file's end (lhotse's tolerance)
    num_jobs: int = 4  # threads checking audio


@dataclass
class AverageConfig:
    last: int = 5  # epoch checkpoints averaged into the model file


@dataclass
class ScoreConfig:
    units: tuple[str, ...] = ("word", "char")  # units scored by ``asr score``
    unit: str = "word"  # the unit ``asr score compare`` tests
    case: str = "keep"  # "keep", "lower" or "upper" before scoring
    remove_punct: bool = False  # delete punctuation except word-internal ' and -
    split_hyphens: bool = False  # "x-ray" -> "x ray"
    html: bool = True  # write report.html with plots (needs matplotlib)
    n_boot: int = 1000  # compare: bootstrap resamples
    seed: int = 0  # compare: seed of the resampling


@dataclass
class ExportConfig:
    format: str = "torchscript"  # "torchscript" (runs with torch alone) or "onnx" (runs under onnxruntime)
    int8: bool = False  # dynamic int8: int8 weights of the recurrent and linear layers, activations quantized per batch
    opset: int = 17  # ONNX opset of the exported graph
    atol: float = 1e-4  # largest |exported - eager| log-probability accepted by the export check (fp32)


@dataclass
class PackageConfig:
    weights: str = "safetensors"  # weights file of the model folder: "safetensors" (PyTorch) or "onnx"
    int8: bool = False  # store dynamic-int8 weights (PyTorch: int8 safetensors; ONNX: onnxruntime quantization)


def to_dict(cfg: Any) -> dict:
    """Dataclass -> plain nested dict (YAML / torch.save friendly)."""
    return dataclasses.asdict(cfg)


def from_dict(cls: type, values: dict, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a nested dict; unknown keys raise ``ValueError``."""
    if not isinstance(values, dict):
        raise ValueError(f"config {prefix or '<root>'}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            raise ValueError(f"unknown config key '{prefix}{key}'")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = from_dict(hint, value or {}, f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(hint, value, f"{prefix}{key}")
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, name: str) -> Any:
    if typing.get_origin(hint) is list:
        if not isinstance(value, list):
            raise ValueError(f"config {name}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)
        return [_coerce(item, v, f"{name}[{i}]") for i, v in enumerate(value)]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"config {name}: expected float, got {value!r}") from None
    if hint in (int, float, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ValueError(f"config {name}: expected {hint.__name__}, got {value!r}")
    return value


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for i, part in enumerate(parents):
        if tree.get(part) is None:
            tree[part] = {}
        tree = tree[part]
        if not isinstance(tree, dict):
            raise ValueError(f"override '{dotted}': '{'.'.join(parents[: i + 1])}' is not a section")
    tree[leaf] = value


def load_config(path: str | Path | None = None, overrides: list[str] = (), cls: type = TrainConfig):
    """Read a YAML file of values (or none) and apply ``a.b=value`` overrides."""
    values: dict = {}
    if path is not None:
        with open(path) as f:
            values = yaml.safe_load(f) or {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override '{item}': expected key=value")
        key, raw = item.split("=", 1)
        _set_dotted(values, key.strip(), yaml.safe_load(raw))
    return from_dict(cls, values)
