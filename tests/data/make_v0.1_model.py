"""How tests/data/model-v0.1.pt was written: run with PYTHONPATH at commit bd0724f (before the package moved into subpackages)."""
import sys, torch
from asr.config import ModelConfig, EncoderConfig, SubsamplingConfig, TokenizerConfig
from asr.model import CTCModel
from asr.tokenizer import build_tokenizer
from asr.checkpoint import model_package, save_atomic
torch.manual_seed(0)
cfg = ModelConfig(encoder=EncoderConfig(num_layers=1, hidden_size=8), subsampling=SubsamplingConfig(factor=2))
tok = build_tokenizer(TokenizerConfig(), ["HELLO WORLD", "ABC DEF GHI JKL MNO PQR STU VWX YZ"])
model = CTCModel(cfg, len(tok.units))
model.cmvn.set_stats(10, torch.arange(80.).double() * 10, (torch.arange(80.).double() ** 2 + 1) * 10)
save_atomic(model_package(model.eval(), tok), sys.argv[1])
feats = torch.randn(2, 23, 80, generator=torch.Generator().manual_seed(1)); lens = torch.tensor([23, 17])
lp, ol = model.eval()(feats, lens)
torch.save({"feats": feats, "lens": lens, "log_probs": lp.detach(), "out_lens": ol}, sys.argv[2])
