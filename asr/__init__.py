"""asr: recurrent (BiLSTM / BiGRU / RNN) CTC speech recognition.

``from asr import Recognizer`` is the Python API (``asr.inference.recognizer``); it is imported on
first use, so ``import asr.config`` stays light.
"""

__version__ = "0.1.0"

__all__ = ["Recognizer", "__version__"]


def __getattr__(name: str):
    if name == "Recognizer":
        from .inference.recognizer import Recognizer

        return Recognizer
    raise AttributeError(f"module 'asr' has no attribute {name!r}")
