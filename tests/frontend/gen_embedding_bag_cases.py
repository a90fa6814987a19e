#!/opt/torchenv/bin/python
"""Writes data/embedding_bag/*.onnx and data/embedding_bag/cases.json for torch_embedding_bag_test:
F.embedding_bag in each mode and option, exported by torch 2.15's dynamo exporter (dynamo_default;
three also without its optimizer, as the export helper writes them; five by the legacy exporter),
with PyTorch's bag values and gradients.

    /opt/torchenv/bin/python tests/frontend/gen_embedding_bag_cases.py

Each model: forward(idx, off[, psw_in]) -> (loss, out), out = F.embedding_bag(idx, W, off, ...,
per_sample_weights=psw_in * psw_scale) and loss = sum(out * C) for a fixed C; W and psw_scale train. Only the
fx_node metadata is kept (what dscompile reads). The JSON gives, per file, the inputs, the expected
out, and the gradients of the parameters by their initializer names, in float64 from float32 data.
Indices repeat within bags and W has tied rows, so max mode's gradient shows which position torch
picks (the first); bags are empty or all padding.
"""
import json
import os
import warnings

import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data", "embedding_bag")
V, D = 7, 3
FX = "pkg.torch.onnx.fx_node"


class Bag(nn.Module):
    def __init__(self, n, bags, psw=False, **kw):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        w = torch.randn(V, D, generator=g)
        w[4] = w[1]  # tied rows: max mode picks the first position holding the maximum
        self.weight = nn.Parameter(w)
        # per_sample_weights = psw_in * psw_scale: from the data as in a model, and trained here (a
        # parameter passed as is would be folded into a constant by the exporter's optimizer)
        self.psw_scale = nn.Parameter(torch.rand(n, generator=g) + 0.5) if psw else None
        self.register_buffer("c", torch.randn(bags, D, generator=g))
        self.kw = kw

    def forward(self, idx, off, psw_in=None):
        if idx.dim() == 2:
            out = F.embedding_bag(idx, self.weight, None, **self.kw)
        else:
            psw = None if self.psw_scale is None else psw_in * self.psw_scale
            out = F.embedding_bag(idx, self.weight, off, per_sample_weights=psw, **self.kw)
        return (out * self.c).sum(), out


IDX = [1, 4, 2, 6, 1, 2, 2, 5, 3]  # 9 indices; rows 1 and 4 are equal
OFF = [0, 3, 3, 5, 9]  # bags [0,3) [3,3) [3,5) [5,9) [9,9): two empty
CASES = [
    # name, kwargs, per_sample_weights, offsets, number of bags
    ("sum_psw", dict(mode="sum"), True, OFF, 5),
    ("mean", dict(mode="mean"), False, OFF, 5),
    ("max", dict(mode="max"), False, OFF, 5),
    ("sum_pad_psw", dict(mode="sum", padding_idx=2), True, OFF, 5),
    ("mean_pad", dict(mode="mean", padding_idx=2), False, [0, 3, 5, 7], 4),  # bag [5,7) is all padding
    ("max_pad", dict(mode="max", padding_idx=2), False, [0, 3, 5, 7], 4),
    # include_last_offset: B + 1 offsets, the last one N as torch documents (CSR form; for a last
    # offset below N, torch's CPU kernels disagree: sum stops there, mean divides by N - O[B-1], max
    # reads on to N)
    ("mean_last_offset", dict(mode="mean", include_last_offset=True), False, [0, 3, 3, 9], 3),
    ("max_last_offset", dict(mode="max", include_last_offset=True), False, [0, 2, 2, 9], 3),
    ("sum_2d", dict(mode="sum"), False, None, 3),  # 2-D input: fixed bags of 3
    ("sparse_sum", dict(mode="sum", sparse=True), False, OFF, 5),
    ("max_last_offset_int32", dict(mode="max", include_last_offset=True), False, [0, 2, 2, 9], 3),  # int32 ids, offsets
]
# Also exported without the exporter's optimizer (the export helper's form: every If of torchlib's
# loop body kept); the others only in dynamo_default, to keep the files few.
NOOPT = ("sum_pad_psw", "max_pad", "mean_last_offset")
# Also exported by the legacy exporter (opset 17), which refuses padding_idx: a Loop without metadata
# whose body dscompile reads (in mode mean and max the file itself gives NaN / -inf for an empty bag,
# torch 0).
LEGACY = ("sum_psw", "mean", "max", "mean_last_offset", "sum_2d")
REFUSED = [
    ("scale_grad_by_freq", dict(mode="mean", scale_grad_by_freq=True), False, OFF, 5),
]


def export(module, args, path, optimize):
    names = dict(input_names=["idx", "off", "psw_in"][:len(args)], output_names=["loss", "out"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if optimize is None:  # the legacy (TorchScript) exporter
            torch.onnx.export(module, args, path, dynamo=False, opset_version=17, do_constant_folding=False,
                              training=torch.onnx.TrainingMode.TRAINING, **names)
        else:
            torch.onnx.export(module, args, path, dynamo=True, optimize=optimize, external_data=False, **names)
    m = onnx.load(path)

    def strip(graph, keep_fx):
        for n in graph.node:
            keep = [p for p in n.metadata_props if keep_fx and p.key == FX]
            del n.metadata_props[:]
            n.metadata_props.extend(keep)
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    strip(a.g, False)
    strip(m.graph, True)  # the Loop body's copies of the call are not read
    for k in list(m.metadata_props):
        m.metadata_props.remove(k)
    onnx.save(m, path)


def main():
    os.makedirs(OUT, exist_ok=True)
    cases = []
    for name, kw, psw, off, bags in CASES + REFUSED:
        itype = torch.int32 if name.endswith("int32") else torch.int64
        idx = torch.tensor(IDX, dtype=itype) if off is not None else torch.tensor(IDX).reshape(3, 3)
        offsets = torch.tensor(off if off is not None else [0], dtype=itype)
        m = Bag(idx.numel(), bags, psw, **kw)
        psw_in = torch.rand(idx.numel(), generator=torch.Generator().manual_seed(5)) if psw else None
        args = (idx, offsets) if not psw else (idx, offsets, psw_in)
        loss, out = m(*args)
        params = {"weight": m.weight} if not psw else {"weight": m.weight, "psw_scale": m.psw_scale}
        grads = torch.autograd.grad(loss, list(params.values()))
        for optimize, mode in ((True, "dynamo_default"), (False, "noopt"), (None, "legacy17")):
            if (optimize is False and name not in NOOPT) or (optimize is None and name not in LEGACY):
                continue
            fname = "%s.%s.onnx" % (name, mode)
            export(m, args, os.path.join(OUT, fname), optimize)
            cases.append({
                "file": fname, "refused": (name, kw, psw, off, bags) in REFUSED,
                "idx": idx.reshape(-1).tolist(), "idx_shape": list(idx.shape), "off": offsets.tolist(),
                "int32": itype == torch.int32,
                "psw_in": [] if psw_in is None else psw_in.double().tolist(),
                "out": out.detach().double().reshape(-1).tolist(), "out_shape": list(out.shape),
                "loss": loss.item(),
                "grads": {k: g.to_dense().double().reshape(-1).tolist() for k, g in zip(params, grads)},
            })
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(cases, f, indent=0, separators=(",", ":"))
        f.write("\n")
    print("wrote %d cases, %d bytes of models" % (len(cases), sum(
        os.path.getsize(os.path.join(OUT, c["file"])) for c in cases)))


if __name__ == "__main__":
    main()
