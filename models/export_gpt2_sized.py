#!/opt/torchenv/bin/python
"""GPT-2-shaped training graphs of any size, with random weights (no download), for size tests.

    /opt/torchenv/bin/python models/export_gpt2_sized.py --preset small -o /tmp/gpt2s
    /opt/torchenv/bin/python models/export_gpt2_sized.py --layers 48 --width 1600 --heads 25 -o /tmp/xl
    /opt/torchenv/bin/python models/export_gpt2_sized.py --preset ci -o models/gpt2_sized   # bundled

Writes to OUT/:
    gpt2.onnx (+ gpt2.onnx.data when --external-data, or past 1 GiB of weights)
    data/input_ids.npy, data/labels.npy   --samples sequences of --seq tokens (labels = next token)
    model.json                            the shape, parameter count, exporter call, versions

The model is Hugging Face's GPT2LMHeadModel (tied wte/lm_head, pre-LN blocks, tanh GELU) with all
dropout 0, wrapped so forward(input_ids, labels) returns the mean token cross entropy, exported by
tools/export_for_training.py (dynamo, optimize=False). Weights come from GPT-2's own initialiser
under torch.manual_seed(--seed): the same arguments give the same weights.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import onnx
import torch
import transformers as T

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import export_for_training as X  # noqa: E402
from export_current import CausalLMLoss  # noqa: E402  (forward(input_ids, labels) -> token cross entropy)

# name -> (layers, width, heads, vocab, positions)
PRESETS = {
    "ci": (12, 32, 4, 512, 128),        # the bundled 12-layer case: GPT-2's graph, tiny weights
    "small": (12, 768, 12, 50257, 1024),   # GPT-2 (124M)
    "medium": (24, 1024, 16, 50257, 1024),
    "large": (36, 1280, 20, 50257, 1024),
    "xl": (48, 1600, 25, 50257, 1024),     # GPT-2 XL (1.5B)
}


def build(layers, width, heads, vocab, positions, seed):
    torch.manual_seed(seed)
    cfg = T.GPT2Config(vocab_size=vocab, n_positions=positions, n_embd=width, n_layer=layers,
                       n_head=heads, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                       use_cache=False)
    return CausalLMLoss(T.GPT2LMHeadModel(cfg))


def data(n, seq, vocab, seed):
    """Arithmetic token progressions with 5% noise: learnable, so a short run's loss falls."""
    rs = np.random.RandomState(seed)
    start = rs.randint(0, vocab, size=(n, 1))
    step = rs.randint(1, 4, size=(n, 1))
    toks = (start + step * np.arange(seq + 1)[None, :]) % vocab
    noise = rs.random_sample(toks.shape) < 0.05
    toks = np.where(noise, rs.randint(0, vocab, size=toks.shape), toks).astype(np.int64)
    return {"input_ids": np.ascontiguousarray(toks[:, :-1]), "labels": np.ascontiguousarray(toks[:, 1:])}


def strip_node_metadata(path):
    """The dynamo exporter stores each node's stack trace, name scopes and class hierarchy: most of
    a small model's bytes and this machine's paths. The fx node record is kept (dscompile reads
    it); external data stays where it is."""
    m = onnx.load(path, load_external_data=False)
    for n in m.graph.node:
        keep = [p for p in n.metadata_props if p.key == "pkg.torch.onnx.fx_node"]
        del n.metadata_props[:]
        n.metadata_props.extend(keep)
    onnx.save(m, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), help="a named shape (flags below override it)")
    ap.add_argument("--layers", type=int)
    ap.add_argument("--width", type=int, help="n_embd")
    ap.add_argument("--heads", type=int)
    ap.add_argument("--vocab", type=int)
    ap.add_argument("--positions", type=int, help="n_positions (the wpe table's rows)")
    ap.add_argument("--seq", type=int, default=128, help="tokens per sample in data/ (default 128)")
    ap.add_argument("--samples", type=int, default=64, help="samples in data/ (default 64)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--external-data", action="store_true",
                    help="weights in gpt2.onnx.data (always past 1 GiB: protobuf's 2 GiB limit)")
    ap.add_argument("-o", "--out", required=True, help="output folder (created)")
    a = ap.parse_args(argv)
    shape = list(PRESETS[a.preset]) if a.preset else [None] * 5
    for i, k in enumerate(("layers", "width", "heads", "vocab", "positions")):
        if getattr(a, k) is not None:
            shape[i] = getattr(a, k)
        if shape[i] is None:
            ap.error("--%s is required without --preset" % k)
    layers, width, heads, vocab, positions = shape
    if width % heads:
        ap.error("--width %d is not a multiple of --heads %d" % (width, heads))
    if a.seq > positions:
        ap.error("--seq %d exceeds --positions %d" % (a.seq, positions))

    t0 = time.time()
    module = build(layers, width, heads, vocab, positions, a.seed)
    nparam = sum(p.numel() for p in module.parameters())
    print("built GPT-2 %d x %d (heads %d, vocab %d, positions %d): %d parameters (%.1f M) in %.1fs"
          % (layers, width, heads, vocab, positions, nparam, nparam / 1e6, time.time() - t0), flush=True)
    os.makedirs(os.path.join(a.out, "data"), exist_ok=True)
    d = data(a.samples, a.seq, vocab, a.seed)
    for k, v in d.items():
        np.save(os.path.join(a.out, "data", k + ".npy"), v)
    path = os.path.join(a.out, "gpt2.onnx")
    example = (torch.from_numpy(d["input_ids"][:2]), torch.from_numpy(d["labels"][:2]))
    external = True if a.external_data else None  # None: the helper's own 1 GiB rule
    t1 = time.time()
    info = X.export_for_training(module, example, path, external_data=external)
    strip_node_metadata(path)
    secs = time.time() - t1
    files = {f: os.path.getsize(os.path.join(a.out, f)) for f in sorted(os.listdir(a.out))
             if f.startswith("gpt2.onnx")}
    meta = {"layers": layers, "width": width, "heads": heads, "vocab": vocab, "positions": positions,
            "seq": a.seq, "samples": a.samples, "seed": a.seed, "parameters": nparam,
            "fp32_bytes": nparam * 4, "files": files, "exporter": info["exporter"],
            "export_seconds": round(secs, 1), "torch": torch.__version__,
            "transformers": T.__version__}
    with open(os.path.join(a.out, "model.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")
    print("exported %s in %.1fs: %s" % (path, secs, ", ".join("%s %.1f MB" % (k, v / 1e6)
                                                             for k, v in files.items())))


if __name__ == "__main__":
    main()
