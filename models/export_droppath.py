#!/opt/torchenv/bin/python
"""Export the drop-path model: where random ops in a training graph are tested.

    /opt/torchenv/bin/python models/export_droppath.py   # writes models/droppath/...

Current torch (2.x, dynamo exporter through tools/export_for_training.py) writes each way
PyTorch models draw random numbers during training as ONNX random ops:
  * Hugging Face's drop path (Swin, BEiT, ConvNeXt, ...): keep_prob + torch.rand([batch, 1, 1]),
    floored: RandomUniformLike, Add, Floor;
  * torchvision's stochastic depth (EfficientNet, ConvNeXt, Swin, ...): an empty([batch, 1, 1])
    tensor's bernoulli_(survival): RandomUniformLike, Less, Cast;
  * Gaussian noise on the activations: torch.randn_like on [batch, seq, hidden]: RandomNormalLike.
No PyTorch reference trajectory is written: PyTorch draws from its own generator, so the tests
compare dscompile's runs across world sizes and micro-batch splits instead (the DESIGN.md
invariant), as for models/dropout.
"""

import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import export_dropout as D  # noqa: E402
import export_for_training as X  # noqa: E402

NUM_SAMPLES = 256
P = 0.3


def hf_drop_path(x, p):
    keep = 1 - p
    r = keep + torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device)
    return x.div(keep) * r.floor()


def tv_stochastic_depth(x, p):
    survival = 1.0 - p
    noise = torch.empty([x.shape[0]] + [1] * (x.ndim - 1), dtype=x.dtype, device=x.device).bernoulli_(survival)
    return x * noise.div_(survival)


class DropPathNet(nn.Module):
    def __init__(self, d_in=8, hidden=32, n_cls=5):
        super().__init__()
        self.fc_in = nn.Linear(d_in, hidden)
        self.block1 = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.GELU())
        self.block2 = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.Tanh())
        self.head = nn.Linear(hidden, n_cls)

    def forward(self, x, y):
        h = self.fc_in(x)                                   # [B, S, H]
        h = h + hf_drop_path(self.block1(h), P)
        h = h + tv_stochastic_depth(self.block2(h), P)
        h = h + 0.1 * torch.randn_like(h)
        return F.cross_entropy(self.head(h).mean(dim=1), y)


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    out = os.path.join(HERE, "droppath")
    os.makedirs(os.path.join(out, "data"), exist_ok=True)
    data = D.data(NUM_SAMPLES, seed=6)
    import numpy as np
    for k, v in data.items():
        np.save(os.path.join(out, "data", k + ".npy"), v)
    model = DropPathNet().train()
    example = tuple(torch.from_numpy(data[k][:4]) for k in ("x", "y"))
    X.export_for_training(model, example, os.path.join(out, "droppath.onnx"), log=print)
    return 0


if __name__ == "__main__":
    sys.exit(main())
