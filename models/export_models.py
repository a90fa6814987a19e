#!/usr/bin/python3
"""Export the bundled dscompile training models (mlp, cnn, gpt) to ONNX.

Each model is exported as a *training graph*: the single graph output is the
scalar loss, computed inside the graph from the model inputs and the labels.

    /usr/bin/python3 models/export_models.py            # writes models/<name>/...
    /usr/bin/python3 models/export_models.py --out DIR  # writes DIR/<name>/...
    /usr/bin/python3 models/export_models.py --only gpt

Output layout per model <name>:
    <name>/<name>.onnx                 opset 17, constant folding off, dynamic "batch"
    <name>/data/<input>.npy            NUM_SAMPLES samples per graph input (dim 0 = sample)
    <name>/reference/reference.json    PyTorch loss of the initial weights on the first
                                       REF_BATCH samples (and on the first 2*REF_BATCH)
    <name>/reference/grads/<param>.npy PyTorch d(loss)/d(param) on the first REF_BATCH
                                       samples, one file per ONNX initializer that is a
                                       trainable parameter (file name = initializer name)

Everything is seeded; re-running produces byte-identical files (checked by
tests/models_py/test_models.py).  Requires torch (1.13) and onnx (1.12);
onnxruntime is NOT required.
"""

import argparse
import copy
import json
import math
import os
import sys

import numpy as np
import onnx
import onnx.numpy_helper
import onnx.shape_inference
import torch
import torch.nn as nn
import torch.nn.functional as F

OPSET = 17
NUM_SAMPLES = 256
REF_BATCH = 4


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------

class MLP(nn.Module):
    """Linear-ReLU-Linear-GELU-Linear + cross-entropy.

    Activations are configurable so export_unseen.py can reuse it.
    """

    def __init__(self, dims=(32, 64, 64, 10), acts=("relu", "gelu")):
        super().__init__()
        assert len(acts) == len(dims) - 2
        for i in range(len(dims) - 1):
            setattr(self, "fc%d" % (i + 1), nn.Linear(dims[i], dims[i + 1]))
        self.n = len(dims) - 1
        self.acts = [_make_act(a) for a in acts]
        for i, a in enumerate(self.acts):
            setattr(self, "act%d" % (i + 1), a)

    def logits(self, x):
        for i in range(self.n):
            x = getattr(self, "fc%d" % (i + 1))(x)
            if i < self.n - 1:
                x = self.acts[i](x)
        return x

    def forward(self, x, y):
        return F.cross_entropy(self.logits(x), y)


def _make_act(name):
    return {
        "relu": nn.ReLU(),
        "gelu": nn.GELU(),
        "tanh": nn.Tanh(),
        "sigmoid": nn.Sigmoid(),
        "leakyrelu": nn.LeakyReLU(0.1),
    }[name]


class CNN(nn.Module):
    """Conv-BN-ReLU-MaxPool-Conv-ReLU-AvgPool-Flatten-Linear + cross-entropy."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, stride=1)
        self.pool2 = nn.AvgPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def logits(self, x):
        x = self.pool1(F.relu(self.bn1(self.conv1(x))))
        x = self.pool2(F.relu(self.conv2(x)))
        return self.fc(self.flatten(x))

    def forward(self, x, y):
        return F.cross_entropy(self.logits(x), y)


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, block_size, size_driven=False, mask_name="mask"):
        super().__init__()
        assert n_embd % n_head == 0
        self.n_head = n_head
        self.n_embd = n_embd
        self.head_dim = n_embd // n_head
        self.size_driven = size_driven
        self.mask_name = mask_name
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        # Causal mask buffer (float 0/1, lower triangular).  nanoGPT calls it "bias";
        # the bundled gpt uses "mask" so it is not mistaken for a trainable bias,
        # export_unseen.py uses "bias" to check the compiler does not go by names.
        self.register_buffer(
            mask_name,
            torch.tril(torch.ones(block_size, block_size)).view(1, 1, block_size, block_size))

    def forward(self, x):
        if self.size_driven:
            # Every reshape driven by x.size(i) -> Shape/Gather/Unsqueeze/Concat chains.
            B, T, C = x.size(0), x.size(1), x.size(2)
        else:
            B, T, C = x.size()
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))
        mask = getattr(self, self.mask_name)
        att = att.masked_fill(mask[:, :, :T, :T] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class GPTMLP(nn.Module):
    def __init__(self, n_embd):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, n_embd, n_head, block_size, size_driven=False, mask_name="mask"):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, block_size, size_driven, mask_name)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = GPTMLP(n_embd)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    """Small nanoGPT-style decoder, no dropout, untied lm_head."""

    def __init__(self, vocab_size=64, block_size=16, n_layer=2, n_embd=32, n_head=4,
                 size_driven=False, lm_head_bias=True, mask_name="mask"):
        super().__init__()
        self.vocab_size = vocab_size
        self.block_size = block_size
        self.size_driven = size_driven
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocab_size, n_embd),
            wpe=nn.Embedding(block_size, n_embd),
            h=nn.ModuleList([Block(n_embd, n_head, block_size, size_driven, mask_name)
                             for _ in range(n_layer)]),
            ln_f=nn.LayerNorm(n_embd),
        ))
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=lm_head_bias)

    def forward(self, idx, targets):
        t = idx.size(1)
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)
        if self.size_driven:
            return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        return F.cross_entropy(logits.view(-1, self.vocab_size), targets.view(-1))


# --------------------------------------------------------------------------
# Synthetic, learnable data (numpy RandomState: stable across numpy versions)
# --------------------------------------------------------------------------

def data_mlp(n, seed, in_dim=32, n_cls=10):
    rs = np.random.RandomState(seed)
    x = rs.standard_normal((n, in_dim)).astype(np.float32)
    teacher = rs.standard_normal((in_dim, n_cls)).astype(np.float32)
    y = np.argmax(x @ teacher, axis=1).astype(np.int64)
    return {"x": x, "y": y}


def data_cnn(n, seed, chans=1, hw=16, n_cls=10):
    rs = np.random.RandomState(seed)
    templates = rs.standard_normal((n_cls, chans, hw, hw)).astype(np.float32)
    y = rs.randint(0, n_cls, size=n).astype(np.int64)
    noise = rs.standard_normal((n, chans, hw, hw)).astype(np.float32)
    x = (templates[y] + np.float32(0.5) * noise).astype(np.float32)
    return {"x": x, "y": y}


def data_gpt(n, seed, vocab=64, seq=16, noise=0.05):
    """Arithmetic progressions mod vocab: tok[t+1] = (tok[t] + step) % vocab,
    step in {1, 2, 3}; a fraction `noise` of tokens replaced by random ones."""
    rs = np.random.RandomState(seed)
    start = rs.randint(0, vocab, size=(n, 1))
    step = rs.randint(1, 4, size=(n, 1))
    seqs = (start + step * np.arange(seq + 1)[None, :]) % vocab
    mask = rs.random_sample(seqs.shape) < noise
    seqs = np.where(mask, rs.randint(0, vocab, size=seqs.shape), seqs).astype(np.int64)
    return {"idx": np.ascontiguousarray(seqs[:, :-1]),
            "targets": np.ascontiguousarray(seqs[:, 1:])}


# --------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------

def export_one(name, model, data, out_root, ref=True, verbose=True):
    """Export `model` (forward(*inputs) -> scalar loss) to out_root/name/."""
    in_names = list(data.keys())
    mdir = os.path.join(out_root, name)
    os.makedirs(os.path.join(mdir, "data"), exist_ok=True)
    for k, v in data.items():
        np.save(os.path.join(mdir, "data", k + ".npy"), v)

    # Pristine copy of the initial state: exporting in training mode runs the
    # model in train mode, which would update BatchNorm running statistics.
    pristine = copy.deepcopy(model.state_dict())

    sample = tuple(torch.from_numpy(data[k][:REF_BATCH]) for k in in_names)
    path = os.path.join(mdir, name + ".onnx")
    export_model = copy.deepcopy(model)
    export_model.train()
    # Always TrainingMode.TRAINING: BatchNormalization gets training_mode=1, and
    # (important) torch's initializer de-duplication then only merges tensors that
    # share storage.  In EVAL mode torch 1.13 merges initializers with *equal
    # values* (e.g. every LayerNorm weight = ones) into one initializer plus
    # Identity nodes, which would silently tie independent trainable parameters.
    mode = torch.onnx.TrainingMode.TRAINING
    torch.onnx.export(
        export_model, sample, path,
        export_params=True,
        keep_initializers_as_inputs=False,
        opset_version=OPSET,
        do_constant_folding=False,
        training=mode,
        input_names=in_names,
        output_names=["loss"],
        dynamic_axes={k: {0: "batch"} for k in in_names},
    )

    m = onnx.load(path)
    # Restore pristine initial values for any buffer the trace may have touched
    # (BatchNorm running_mean / running_var / num_batches_tracked).
    changed = False
    for init in m.graph.initializer:
        if init.name in pristine:
            want = pristine[init.name].detach().cpu().numpy()
            have = onnx.numpy_helper.to_array(init)
            if have.shape == want.shape and not np.array_equal(have, want):
                init.CopyFrom(onnx.numpy_helper.from_array(want.astype(have.dtype), init.name))
                changed = True
    if changed:
        onnx.save(m, path)
        m = onnx.load(path)

    onnx.checker.check_model(m)
    onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)

    if verbose:
        print("== %s: %s (%d bytes)" % (name, path, os.path.getsize(path)))
        print("  inputs : %s" % ", ".join(
            "%s %s" % (i.name, _vi_str(i)) for i in m.graph.input))
        print("  outputs: %s" % ", ".join(
            "%s %s" % (o.name, _vi_str(o)) for o in m.graph.output))
        print("  %-40s %s" % ("initializer", "shape"))
        for init in m.graph.initializer:
            print("  %-40s %s %s" % (init.name, list(init.dims),
                                     onnx.TensorProto.DataType.Name(init.data_type)))
        ops = {}
        for node in m.graph.node:
            ops[node.op_type] = ops.get(node.op_type, 0) + 1
        print("  ops: " + ", ".join("%s=%d" % kv for kv in sorted(ops.items())))
        if changed:
            print("  (restored pristine initial values of buffers the trace updated)")

    if ref:
        _write_reference(model, pristine, data, in_names, m, mdir)
    return path


def _vi_str(vi):
    t = vi.type.tensor_type
    dims = [d.dim_param if d.dim_param else d.dim_value for d in t.shape.dim]
    return "%s%s" % (onnx.TensorProto.DataType.Name(t.elem_type).lower(), dims)


def _write_reference(model, pristine, data, in_names, m, mdir):
    rdir = os.path.join(mdir, "reference")
    gdir = os.path.join(rdir, "grads")
    os.makedirs(gdir, exist_ok=True)
    ref_model = copy.deepcopy(model)
    ref_model.load_state_dict(pristine)
    # Train mode so BatchNorm uses batch statistics, matching the exported graph
    # (no dropout anywhere, so otherwise identical).
    ref_model.train()
    init_names = [i.name for i in m.graph.initializer]
    params = dict(ref_model.named_parameters())
    info = {
        # Initializers that are trainable nn.Parameters (everything else, e.g.
        # BatchNorm running stats or the causal mask, is a non-trainable buffer).
        "trainable": [n for n in init_names if n in params],
        "non_trainable": [n for n in init_names if n not in params],
        "ref_batch": REF_BATCH,
    }
    losses = {}
    for nb in (REF_BATCH, 2 * REF_BATCH):
        mm = copy.deepcopy(ref_model)
        inputs = tuple(torch.from_numpy(data[k][:nb]) for k in in_names)
        mm.zero_grad()
        loss = mm(*inputs)
        losses["loss_first_%d" % nb] = float(loss.item())
        if nb == REF_BATCH:
            loss.backward()
            for pname, p in mm.named_parameters():
                if pname in init_names:
                    np.save(os.path.join(gdir, pname + ".npy"),
                            p.grad.detach().numpy().astype(np.float32))
    with open(os.path.join(rdir, "reference.json"), "w") as f:
        info.update({k: float("%.9g" % v) for k, v in losses.items()})
        json.dump(info, f, indent=1, sort_keys=True)
        f.write("\n")


def build_bundled():
    """(name, model, data) for the bundled models, seeded."""
    out = []
    torch.manual_seed(0)
    out.append(("mlp", MLP(), data_mlp(NUM_SAMPLES, seed=1)))
    torch.manual_seed(0)
    out.append(("cnn", CNN(), data_cnn(NUM_SAMPLES, seed=2)))
    torch.manual_seed(0)
    out.append(("gpt", GPT(), data_gpt(NUM_SAMPLES, seed=3)))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)),
                    help="output root (default: the models/ directory)")
    ap.add_argument("--only", action="append", help="export only this model (repeatable)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # deterministic reductions for the reference values
    for name, model, data in build_bundled():
        if args.only and name not in args.only:
            continue
        export_one(name, model, data, args.out, verbose=not args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
