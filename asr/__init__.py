"""asr: recurrent (BiLSTM / BiGRU / RNN) CTC speech recognition."""

__version__ = "0.1.0"
