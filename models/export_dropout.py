#!/usr/bin/python3
"""Export the dropout model: where dropout's per-sample masks are tested.

    /usr/bin/python3 models/export_dropout.py   # writes models/dropout/...

Dropout (p = 0.25) sits at three kinds of places, so every way dscompile finds a
sample's position in a tensor is exercised:
  * [batch, seq, hidden]  the batch is dim 0 by name;
  * [seq, batch, hidden]  the batch is dim 1 by name (a sequence-first layout);
  * [batch*seq, hidden]   a flattened batch: dim 0 holds seq rows per sample.
No PyTorch reference trajectory is written: PyTorch's masks come from its own
generator, so the tests compare dscompile's runs across world sizes and
micro-batch splits instead (the DESIGN.md invariant), and check keep rates.
"""

import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_models import export_one  # noqa: E402

NUM_SAMPLES = 256
P = 0.25


class DropNet(nn.Module):
    def __init__(self, d_in=8, hidden=32, n_cls=5):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, n_cls)
        self.hidden = hidden

    def forward(self, x, y):
        b, s = x.shape[0], x.shape[1]
        h = F.dropout(F.gelu(self.fc1(x)), P, self.training)            # [B, S, H]
        h = h.transpose(0, 1)                                             # [S, B, H]
        h = F.dropout(torch.tanh(self.fc2(h)), P, self.training)          # batch at dim 1
        h = h.transpose(0, 1).reshape(-1, self.hidden)                    # [B*S, H]
        h = F.dropout(F.relu(self.fc3(h)), P, self.training)              # flattened batch
        logits = self.head(h).reshape(b, s, -1).mean(dim=1)
        return F.cross_entropy(logits, y)


def data(n, seed, seq=6, d_in=8, n_cls=5):
    rs = np.random.RandomState(seed)
    x = rs.standard_normal((n, seq, d_in)).astype(np.float32)
    teacher = rs.standard_normal((d_in, n_cls)).astype(np.float32)
    y = np.argmax(x.mean(axis=1) @ teacher, axis=1).astype(np.int64)
    return {"x": x, "y": y}


def main():
    torch.manual_seed(0)
    torch.set_num_threads(1)
    out = os.path.dirname(os.path.abspath(__file__))
    export_one("dropout", DropNet(), data(NUM_SAMPLES, seed=5), out, ref=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
