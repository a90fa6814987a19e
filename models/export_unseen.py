#!/usr/bin/python3
"""Export *extra* PyTorch training models that the compiler is not tuned on.

Meant to be run by tests at test time, into a scratch directory:

    /usr/bin/python3 models/export_unseen.py OUT_DIR [--only NAME ...] [--quiet]

Writes OUT_DIR/<name>/<name>.onnx, OUT_DIR/<name>/data/<input>.npy and
OUT_DIR/<name>/reference/{reference.json,grads/*.npy}, same layout and export
settings as export_models.py (opset 17, constant folding off, dynamic "batch"
dimension, TrainingMode.TRAINING, single scalar output "loss").  Deterministic
(seeded) and quick (a few seconds).

Models:
  mlp_mix   x f32[batch,20], y i64[batch] (7 classes):
            Linear 20-48-96-40-7 with Tanh, Sigmoid, LeakyReLU(0.1); cross entropy.
  cnn_s2g   x f32[batch,3,12,12], y i64[batch] (5 classes):
            Conv(3->12,k3,stride2,pad1)-BN-ReLU-Conv(12->24,k3,pad1,groups=4)-BN-
            LeakyReLU-Conv1x1(24->16,no bias)-Sigmoid*x (SiLU written out)-
            AdaptiveAvgPool(1)-x.view(x.size(0),-1)-Linear(16,5); cross entropy.
  gpt_3l    idx i64[batch,12], targets i64[batch,12] (vocab 50): 3 layers, n_embd 48,
            6 heads (head dim 8), every reshape driven by x.size(i), causal-mask
            buffer named "bias" (nanoGPT naming; NOT trainable), lm_head without bias.
"""

import argparse
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_models as E  # noqa: E402

NUM_SAMPLES = 64


class CNNStride2Groups(nn.Module):
    def __init__(self, in_ch=3, n_cls=5):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, 12, 3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(12)
        self.conv2 = nn.Conv2d(12, 24, 3, padding=1, groups=4)
        self.bn2 = nn.BatchNorm2d(24)
        self.conv3 = nn.Conv2d(24, 16, 1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(16, n_cls)

    def forward(self, x, y):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.leaky_relu(self.bn2(self.conv2(x)), 0.2)
        x = self.conv3(x)
        x = x * torch.sigmoid(x)
        x = self.pool(x)
        x = x.view(x.size(0), -1)
        return F.cross_entropy(self.head(x), y)


def build_unseen():
    out = []
    torch.manual_seed(1234)
    out.append(("mlp_mix",
                E.MLP(dims=(20, 48, 96, 40, 7), acts=("tanh", "sigmoid", "leakyrelu")),
                E.data_mlp(NUM_SAMPLES, seed=11, in_dim=20, n_cls=7)))
    torch.manual_seed(1235)
    out.append(("cnn_s2g", CNNStride2Groups(),
                E.data_cnn(NUM_SAMPLES, seed=12, chans=3, hw=12, n_cls=5)))
    torch.manual_seed(1236)
    out.append(("gpt_3l",
                E.GPT(vocab_size=50, block_size=12, n_layer=3, n_embd=48, n_head=6,
                      size_driven=True, lm_head_bias=False, mask_name="bias"),
                E.data_gpt(NUM_SAMPLES, seed=13, vocab=50, seq=12)))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", help="output directory (created if missing)")
    ap.add_argument("--only", action="append", help="export only this model (repeatable)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    for name, model, data in build_unseen():
        if args.only and name not in args.only:
            continue
        E.export_one(name, model, data, args.out, verbose=not args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
