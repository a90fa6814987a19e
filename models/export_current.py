#!/opt/torchenv/bin/python
"""Current-PyTorch test models: tiny Hugging Face/SDPA models exported in every exporter mode.

Re-run (torch 2.15 / transformers 5 / onnx 1.23 venv; seeded, no downloads; ~2 min):

    /opt/torchenv/bin/python models/export_current.py                # all of models/current/
    /opt/torchenv/bin/python models/export_current.py --only gpt2 --out /tmp/cur

Per model <m> in models/current/<m>/:
    <m>.<mode>.onnx                    one file per exporter mode (MODES below) that succeeded
    data/<input>.npy                   NUM_SAMPLES samples per graph input (dim 0 = sample)
    reference/trajectories/adam.json   PyTorch 30-step trajectory with reference_configs/adam.json,
                                       same format and DeepSpeed semantics as
                                       reference_trajectories.py (no shuffling, drop_last)
    reference/parameters.json          PyTorch's named_parameters(): names, shapes, trainable count
and models/current/manifest.json: per file the exporter call, opset, IR version, op types, and how
its initializers map to PyTorch's parameters (tools/export_for_training.map_parameters); a mode the
exporter cannot produce is listed with its error.

Every mode exports the same module object with the same initial weights (seeded construction), and
the trajectory trains a copy of that module, so the trajectory is the reference for every file.
All dropout probabilities are 0; the graphs are exported in train mode.
"""

import argparse
import collections
import copy
import json
import os
import shutil
import sys
import time
import traceback
import warnings

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
import transformers as T

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import export_for_training as X  # noqa: E402
import export_models as E  # noqa: E402
import reference_trajectories as R  # noqa: E402

NUM_SAMPLES = 64
SEQ = 16
VOCAB = 64
EXAMPLE_BATCH = 4
STEPS = R.REFERENCE_STEPS
CONFIG = "adam"

# mode -> (exporter, opset, optimize); opset None = the exporter's default.
MODES = collections.OrderedDict([
    ("dynamo_default", ("dynamo", None, True)),
    ("dynamo18", ("dynamo", 18, True)),
    ("dynamo_default_noopt", ("dynamo", None, False)),
    ("dynamo18_noopt", ("dynamo", 18, False)),
    # opset 23 brings the Attention op (SDPA exports to it); torch 2.15 asked for 24..28 writes
    # Attention into an opset-18 model (fails the ONNX checker), so 23 is the newest kept here
    ("dynamo23_noopt", ("dynamo", 23, False)),
    ("legacy17", ("legacy", 17, False)),
    ("legacy18", ("legacy", 18, False)),
    ("helper", None),
])


# --------------------------------------------------------------------------
# Models: forward(inputs..., labels) -> mean cross entropy
# --------------------------------------------------------------------------

class CausalLMLoss(nn.Module):
    """Labels are already shifted (data_gpt), so the loss is a plain token-wise cross entropy."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, labels):
        logits = self.model(input_ids=input_ids, use_cache=False).logits
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


class SeqClsLoss(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, labels):
        return F.cross_entropy(self.model(input_ids=input_ids).logits, labels)


class ImageClsLoss(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values, labels):
        return F.cross_entropy(self.model(pixel_values=pixel_values).logits, labels)


class SDPABlock(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.n_head = n_head
        self.ln_1 = nn.LayerNorm(n_embd)
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.fc = nn.Linear(n_embd, 4 * n_embd)
        self.fc_out = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln_1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.fc_out(F.gelu(self.fc(self.ln_2(x))))


class SDPAModel(nn.Module):
    """A small GPT whose attention is F.scaled_dot_product_attention(is_causal=True)."""

    def __init__(self, vocab=VOCAB, seq=SEQ, n_embd=32, n_head=4, n_layer=2):
        super().__init__()
        self.tok = nn.Embedding(vocab, n_embd)
        self.pos = nn.Embedding(seq, n_embd)
        self.blocks = nn.ModuleList(SDPABlock(n_embd, n_head) for _ in range(n_layer))
        self.ln_f = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, vocab, bias=False)

    def forward(self, input_ids, labels):
        t = input_ids.shape[1]
        x = self.tok(input_ids) + self.pos(torch.arange(t, device=input_ids.device))
        for blk in self.blocks:
            x = blk(x)
        logits = self.head(self.ln_f(x))
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


def build_gpt2():
    cfg = T.GPT2Config(vocab_size=VOCAB, n_positions=SEQ, n_embd=32, n_layer=2, n_head=4,
                       resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, use_cache=False)
    return CausalLMLoss(T.GPT2LMHeadModel(cfg))


def build_llama():
    cfg = T.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=SEQ,
                        attention_dropout=0.0, tie_word_embeddings=False, use_cache=False)
    return CausalLMLoss(T.LlamaForCausalLM(cfg))


def build_bert():
    cfg = T.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=64, max_position_embeddings=SEQ, num_labels=3,
                       hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return SeqClsLoss(T.BertForSequenceClassification(cfg))


def build_vit():
    cfg = T.ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=32,
                      num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                      hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=10)
    return ImageClsLoss(T.ViTForImageClassification(cfg))


def data_lm(n, seed):
    d = E.data_gpt(n, seed, vocab=VOCAB, seq=SEQ)
    return {"input_ids": d["idx"], "labels": d["targets"]}


def data_seqcls(n, seed):
    """Label = the progression's step - 1 (0..2), read off the (noisy) token sequence."""
    rs = np.random.RandomState(seed)
    start = rs.randint(0, VOCAB, size=(n, 1))
    step = rs.randint(1, 4, size=(n, 1))
    seqs = (start + step * np.arange(SEQ)[None, :]) % VOCAB
    mask = rs.random_sample(seqs.shape) < 0.05
    seqs = np.where(mask, rs.randint(0, VOCAB, size=seqs.shape), seqs).astype(np.int64)
    return {"input_ids": np.ascontiguousarray(seqs), "labels": (step[:, 0] - 1).astype(np.int64)}


def data_image(n, seed):
    d = E.data_cnn(n, seed, chans=3, hw=16, n_cls=10)
    return {"pixel_values": d["x"], "labels": d["y"]}


# name -> (builder, data function, data seed)
MODELS = collections.OrderedDict([
    ("gpt2", (build_gpt2, data_lm, 11)),
    ("llama", (build_llama, data_lm, 12)),
    ("bert", (build_bert, data_seqcls, 13)),
    ("vit", (build_vit, data_image, 14)),
    ("sdpa", (SDPAModel, data_lm, 15)),
])


def build(name):
    torch.manual_seed(0)
    builder, data_fn, seed = MODELS[name]
    return builder().train(), data_fn(NUM_SAMPLES, seed)


# --------------------------------------------------------------------------
# Reference trajectory: reference_trajectories.train's loop on the module itself
# --------------------------------------------------------------------------

def train_trajectory(name, module, in_names, data, cfg, steps):
    R.check_precision(cfg)
    tb, mb, gas = R.resolve_batch(cfg)
    n = NUM_SAMPLES
    spe = n // tb
    clip = cfg.get("gradient_clipping", 1.0)
    clip = 0.0 if clip is None else float(clip)
    params = [p for p in module.parameters() if p.requires_grad]
    opt, desc = R.make_optimizer(cfg, params)
    base_lr = opt.param_groups[0]["lr"]
    sched = R.make_schedule(cfg, base_lr)
    tensors = {k: torch.from_numpy(v) for k, v in data.items()}
    module.train()
    losses, norms, lrs = [], [], []
    for k in range(steps):
        lr = base_lr if sched is None else sched(k - 1)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=True)
        start = (k % spe) * tb
        micro = []
        for a in range(gas):
            s = start + a * mb
            loss = module(*[tensors[nm][s:s + mb] for nm in in_names])
            micro.append(loss.detach())
            (loss / gas).backward()
        step_loss = torch.stack(micro).mean() if gas > 1 else micro[0]
        total = R.global_grad_norm(params)
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        losses.append(float(step_loss.item()))
        norms.append(float(total.item()))
        lrs.append(float(lr))
    return {"model": name, "config": cfg, "steps": steps,
            "batch": {"train_batch_size": tb, "train_micro_batch_size_per_gpu": mb,
                      "gradient_accumulation_steps": gas},
            "samples": n, "steps_per_epoch": spe, "optimizer": desc, "gradient_clipping": clip,
            "loss": losses, "grad_norm": norms, "lr": lrs}


# --------------------------------------------------------------------------
# Export in every mode + manifest entries
# --------------------------------------------------------------------------

def _op_counts(m):
    c = collections.Counter()

    def walk(nodes):
        for n in nodes:
            c[(n.domain + "::" if n.domain not in ("", "ai.onnx") else "") + n.op_type] += 1
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g.node)
                for g in a.graphs:
                    walk(g.node)
    walk(m.graph.node)
    for f in m.functions:
        walk(f.node)
    return collections.OrderedDict(sorted(c.items()))


class _Quiet:
    """Sends fd 1/2 to a temp file: the legacy exporter prints its whole TorchScript graph on an
    unsupported op (the manifest keeps the error's first line)."""

    def __enter__(self):
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = [os.dup(1), os.dup(2)]
        self.tmp = open(os.devnull, "w")
        os.dup2(self.tmp.fileno(), 1)
        os.dup2(self.tmp.fileno(), 2)
        return self

    def __exit__(self, *exc):
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        for fd in self.saved:
            os.close(fd)
        self.tmp.close()
        return False


STACK_TRACE_KEY = "pkg.torch.onnx.stack_trace"


def strip_stack_traces(path):
    """The dynamo exporter stores each node's Python stack trace (this machine's paths, ~40% of a
    tiny file); the other node metadata (name scopes, fx node, class hierarchy) stays."""
    m = onnx.load(path)
    changed = False
    for n in m.graph.node:
        keep = [p for p in n.metadata_props if p.key != STACK_TRACE_KEY]
        if len(keep) != len(n.metadata_props):
            changed = True
            del n.metadata_props[:]
            n.metadata_props.extend(keep)
    if changed:
        onnx.save(m, path)


def mode_call(spec):
    if spec is None:
        return "export_for_training()"
    exporter, opset, optimize = spec
    if exporter == "dynamo":
        return ("torch.onnx.export(dynamo=True, opset_version=%s, optimize=%s, dynamic_shapes=batch "
                "on dim 0)" % (opset, optimize))
    return ("torch.onnx.export(dynamo=False, opset_version=%d, training=TRAINING, "
            "do_constant_folding=False, dynamic_axes=batch on dim 0)" % opset)


def _first_line(e):
    for line in str(e).splitlines():
        if line.strip():
            return "%s: %s" % (type(e).__name__, line.strip())
    return type(e).__name__


def _check(path):
    """"ok" or the first line of onnx.checker's complaint (full check: with shape inference)."""
    try:
        onnx.checker.check_model(path, full_check=True)
        return "ok"
    except Exception as e:  # checker and shape inference raise several types
        return _first_line(e)


def describe_file(path, module, rel, mode, call, reference, unused):
    m = onnx.load(path)
    mp = X.map_parameters(m, module, unused=unused)
    ntrain = sum(1 for _, p in module.named_parameters() if p.requires_grad)
    own = not mp["problems"] and len(mp["trainable"]) + len(mp["unused"]) == ntrain
    float_consts = [c for c in mp["constants"] if c["dtype"].startswith("float")]
    return collections.OrderedDict([
        ("file", rel), ("model", os.path.dirname(rel)), ("mode", mode), ("status", "ok"),
        ("exporter_call", call), ("opset", X._opset(m)), ("ir_version", m.ir_version),
        ("bytes", os.path.getsize(path)),
        ("inputs", [i.name for i in m.graph.input]),
        ("outputs", [o.name for o in m.graph.output]),
        ("op_types", _op_counts(m)), ("functions", [f.name for f in m.functions]),
        ("initializers", len(m.graph.initializer)),
        ("torch_trainable_parameters", ntrain),
        ("every_parameter_own_initializer", own),
        ("mapped_by_value", [e for e in mp["trainable"] if e["initializer"] != e["torch_name"]]),
        ("merged_initializers", mp["merged"]),
        ("parameters_without_initializer", mp["missing"]),
        ("parameters_ambiguous", mp["ambiguous"]),
        ("parameter_problems", mp["problems"]),
        ("duplicated_initializers", mp["duplicates"]),
        ("buffer_initializers", mp["buffers"]),
        ("lifted_float_constants", float_consts),
        ("other_constants", len(mp["constants"]) - len(float_consts)),
        ("metadata", X.read_metadata(m) is not None),
        ("onnx_checker", _check(path)),
        ("reference", reference),
    ])


def export_model(name, out_root, log=print):
    module, data = build(name)
    pristine = copy.deepcopy(module)
    mdir = os.path.join(out_root, name)
    if os.path.isdir(mdir):
        shutil.rmtree(mdir)
    os.makedirs(os.path.join(mdir, "data"))
    os.makedirs(os.path.join(mdir, "reference", "trajectories"))
    in_names = X.input_names_of(module, len(data))
    for k in in_names:
        np.save(os.path.join(mdir, "data", k + ".npy"), data[k])
    example = tuple(torch.from_numpy(data[k][:EXAMPLE_BATCH]) for k in in_names)
    reference = os.path.join(name, "reference", "trajectories", CONFIG + ".json")
    unused = X.unused_parameters(pristine, example)
    entries = []
    for mode, spec in MODES.items():
        rel = os.path.join(name, "%s.%s.onnx" % (name, mode))
        path = os.path.join(out_root, rel)
        t0 = time.time()
        msgs = []
        call = mode_call(spec)
        try:
            with warnings.catch_warnings(), _Quiet():
                warnings.simplefilter("ignore")
                if spec is None:
                    info = X.export_for_training(module, example, path, log=msgs.append)
                    call = "export_for_training(): " + info["call"]
                else:
                    exporter, opset, optimize = spec
                    X.raw_export(module, example, path, exporter, opset, optimize,
                                 external_data=False, log=msgs.append, fallback=False)
            for msg in msgs:
                log(msg)
            strip_stack_traces(path)
            e = describe_file(path, pristine, rel, mode, call, reference, unused)
        except Exception as exc:  # record what the exporter says, do not hide it
            if os.path.exists(path):
                os.remove(path)
            e = collections.OrderedDict([("file", rel), ("model", name), ("mode", mode),
                                         ("status", "export failed"), ("exporter_call", call),
                                         ("error", X.failure_reason(exc)),
                                         ("reference", reference)])
            if os.environ.get("DSC_EXPORT_TRACEBACK"):
                traceback.print_exc()
        for k in os.listdir(mdir):  # side files of external data are not wanted here
            if k.endswith(".data"):
                raise RuntimeError("%s: the exporter wrote external data %s" % (mdir, k))
        log("%-30s %-14s %5.1fs %s" % (rel, e["status"], time.time() - t0,
                                       e.get("error", "opset %s, %d ops, own initializers: %s"
                                             % (e.get("opset"), sum(e.get("op_types", {}).values()),
                                                e.get("every_parameter_own_initializer")))))
        entries.append(e)
    # every mode exported the same weights: the trajectory is trained from a copy of them
    for (a, p), (b, q) in zip(module.named_parameters(), pristine.named_parameters()):
        assert a == b and torch.equal(p, q), a
    cfg = R.load_config(os.path.join(HERE, "reference_configs", CONFIG + ".json"))
    torch.manual_seed(0)
    res = train_trajectory(name, copy.deepcopy(pristine), in_names, data, cfg, STEPS)
    R.dump_result(res, os.path.join(out_root, reference))
    params = [{"name": n, "shape": list(p.shape), "trainable": p.requires_grad}
              for n, p in pristine.named_parameters()]
    info = collections.OrderedDict([
        ("model", name), ("torch", torch.__version__), ("transformers", T.__version__),
        ("class", type(pristine.model).__name__ if hasattr(pristine, "model") else type(pristine).__name__),
        ("inputs", {k: {"dtype": str(data[k].dtype), "shape": list(data[k].shape)} for k in in_names}),
        ("trainable_count", sum(1 for p in params if p["trainable"])),
        ("trainable_elements", sum(p.numel() for p in pristine.parameters() if p.requires_grad)),
        ("parameters", params),
    ])
    with open(os.path.join(mdir, "reference", "parameters.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    log("%-30s loss[1]=%.6f loss[%d]=%.6f" % (reference, res["loss"][0], STEPS, res["loss"][-1]))
    return entries


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--out", default=os.path.join(HERE, "current"))
    ap.add_argument("--only", action="append", choices=list(MODELS))
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    os.makedirs(a.out, exist_ok=True)
    mpath = os.path.join(a.out, "manifest.json")
    manifest = {"files": []}
    if a.only and os.path.exists(mpath):
        with open(mpath) as f:
            manifest = json.load(f)
        manifest["files"] = [e for e in manifest["files"] if e["model"] not in a.only]
    for name in (a.only or MODELS):
        manifest["files"] += export_model(name, a.out)
    order = {m: i for i, m in enumerate(MODELS)}
    modes = {m: i for i, m in enumerate(MODES)}
    manifest["files"].sort(key=lambda e: (order[e["model"]], modes[e["mode"]]))
    manifest["generator"] = "models/export_current.py (torch %s, transformers %s, onnx %s)" % (
        torch.__version__, T.__version__, onnx.__version__)
    manifest["modes"] = {k: (None if v is None else {"exporter": v[0], "opset": v[1], "optimize": v[2]})
                         for k, v in MODES.items()}
    with open(mpath, "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
