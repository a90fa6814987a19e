#!/usr/bin/env python3
"""Export a PyTorch module whose forward returns the scalar loss as an ONNX training graph for dscompile.

Library use (any torch >= 1.13; torch 2.x uses the torch.export-based exporter):

    import export_for_training as X
    info = X.export_for_training(X.WithLoss(hf_model), (input_ids, labels), "model.onnx")
    # or a module whose forward(inputs..., labels) already returns the loss

CLI: a factory `FILE.py:FUNC` returns (module, example_inputs tuple):

    python tools/export_for_training.py my_models.py:make_gpt -o gpt.onnx [--exporter dynamo|legacy]
    python tools/export_for_training.py --show gpt.onnx      # print the recorded parameter list

What the file holds (the contract dscompile reads):
  * one graph output, the loss; dim 0 of every graph input is dynamic ("batch"); graph inputs are
    named after forward()'s arguments;
  * every trainable parameter is an initializer of its own (checked here: a missing, merged or
    duplicated parameter is an error, because dscompile would then train something PyTorch does not);
  * metadata_props["dscompile.parameters"] = JSON {"version": 1, "exporter": "...",
    "trainable": [{"initializer", "torch_name"[, "transposed": true]}], "frozen": [...]};
  * metadata_props["dscompile.embedding_padding"] = JSON {initializer: padding_idx} for each
    nn.Embedding with a padding_idx (that row gets no gradient in PyTorch; Gather cannot say so).

Exporter choice (found by exporting GPT-2/Llama/BERT/ViT with torch 2.15, see models/current/):
  * torch >= 2: torch.onnx.export(dynamo=True, optimize=False, external_data only past 1 GiB).
    optimize=True runs onnxscript's optimizer, which folds parameters into constants (wpe[arange]
    becomes one constant), deduplicates equal-valued initializers (all LayerNorm weights = ones,
    all zero biases become one) and lifts scalars to initializers: fine for inference, wrong for
    training.  optimize=False keeps each parameter under its state_dict name and scalars as
    Constant nodes.  If the dynamo exporter fails, the legacy exporter is tried (printed).
  * torch 1.13 (or --exporter legacy): torch.onnx.export(training=TrainingMode.TRAINING,
    do_constant_folding=False, opset 17): TRAINING mode stops the legacy exporter's merging of
    equal-valued initializers; constant folding off keeps weights un-transposed under their names.
"""

import argparse
import functools
import hashlib
import importlib.util
import inspect
import json
import os
import re
import sys
import warnings

import numpy as np
import onnx
import onnx.external_data_helper
import onnx.numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F

METADATA_KEY = "dscompile.parameters"
PADDING_KEY = "dscompile.embedding_padding"
LEGACY_OPSET = 17
EXTERNAL_DATA_BYTES = 1 << 30


class ExportError(Exception):
    """The export cannot give dscompile exactly PyTorch's parameters; the message says which."""


class WithLoss(nn.Module):
    """forward(*inputs, labels) -> loss_fn(model(*inputs), labels); Hugging Face outputs give .logits.

    The default loss is the mean cross entropy over the last dimension (labels already aligned, e.g.
    shifted by the caller for causal LMs).  Parameter names get the prefix "model.".
    """

    def __init__(self, model, loss_fn=None, input_names=("input_ids",), model_kwargs=None):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn
        self.loss_input_names = tuple(input_names)
        self.model_kwargs = dict(model_kwargs or {})

    def forward(self, *args):
        *inputs, labels = args
        out = self.model(**dict(zip(self.loss_input_names, inputs)), **self.model_kwargs)
        logits = out.logits if hasattr(out, "logits") else out
        if self.loss_fn is not None:
            return self.loss_fn(logits, labels)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


def _torch_major():
    return int(torch.__version__.split(".")[0])


def input_names_of(module, n):
    """Graph input names: forward()'s argument names (dynamo uses them too), or WithLoss's."""
    if hasattr(module, "loss_input_names"):  # WithLoss (also when imported twice, as by the CLI)
        names = list(module.loss_input_names) + ["labels"]
    else:
        params = [p for p in inspect.signature(module.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        names = [p.name for p in params]
    if len(names) < n:
        raise ExportError("forward() of %s names %d arguments, %d example inputs given"
                          % (type(module).__name__, len(names), n))
    return names[:n]


def _param_bytes(module):
    return sum(p.numel() * p.element_size() for p in module.parameters())


def _export_dynamo(module, args, path, names, opset, optimize, external_data):
    from torch.export import Dim
    batch = Dim("batch")
    if hasattr(module, "loss_input_names"):
        dyn = tuple({0: batch} for _ in args)
        dyn = (dyn,)  # WithLoss.forward(*args): one variadic argument
    else:
        dyn = {nm: {0: batch} for nm in names}
    prog = torch.onnx.export(module, tuple(args), dynamo=True, opset_version=opset,
                             optimize=optimize, dynamic_shapes=dyn, input_names=list(names),
                             output_names=["loss"], verbose=False)
    prog.save(path, external_data=external_data)
    return "torch.onnx.export(dynamo=True, optimize=%s)" % optimize


def _export_legacy(module, args, path, names, opset, external_data):
    kw = {}
    if _torch_major() >= 2:
        kw["dynamo"] = False
    torch.onnx.export(module, tuple(args), path, opset_version=opset, export_params=True,
                      training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False,
                      keep_initializers_as_inputs=False, input_names=list(names),
                      output_names=["loss"], dynamic_axes={nm: {0: "batch"} for nm in names}, **kw)
    return "torch.onnx.export(%straining=TRAINING, do_constant_folding=False)" % (
        "dynamo=False, " if kw else "")


def raw_export(module, args, path, exporter="auto", opset=None, optimize=False, external_data=None,
               log=print, fallback=True):
    """Exports with the chosen exporter; returns (call description, names). No parameter checks.
    fallback=False lets a dynamo failure propagate instead of trying the legacy exporter."""
    names = input_names_of(module, len(args))
    if external_data is None:
        external_data = _param_bytes(module) > EXTERNAL_DATA_BYTES
    if exporter == "auto":
        exporter = "dynamo" if _torch_major() >= 2 else "legacy"
    was_training = module.training
    module.train()
    with warnings.catch_warnings():
        # training mode is the point here (BatchNorm statistics, no dropout folding)
        warnings.filterwarnings("ignore", message="Exporting a model while it is in training mode")
        try:
            return _dispatch(module, args, path, names, exporter, opset, optimize, external_data,
                             log, fallback)
        finally:
            module.train(was_training)


def failure_reason(e):
    """One line on why an export failed: the innermost cause (torch.onnx wraps the torch.export
    error in a multi-step banner), colour codes removed."""
    while e.__cause__ is not None:
        e = e.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return "%s: %s" % (type(e).__name__, lines[0][:300] if lines else "")


def _dispatch(module, args, path, names, exporter, opset, optimize, external_data, log, fallback):
    if exporter == "dynamo":
        try:
            return _export_dynamo(module, args, path, names, opset, optimize, external_data), names
        except Exception as e:  # the exporter raises many types; the fallback says which
            if not fallback:
                raise
            first = failure_reason(e)
            log("export_for_training: dynamo exporter failed (%s: %s); falling back to the "
                "legacy exporter" % (type(e).__name__, first))
            return _export_legacy(module, args, path, names, opset or LEGACY_OPSET,
                                  external_data) + " [dynamo failed: %s]" % first, names
    if exporter == "legacy":
        return _export_legacy(module, args, path, names, opset or LEGACY_OPSET, external_data), names
    raise ExportError("unknown exporter %r (auto, dynamo, legacy)" % exporter)


# --------------------------------------------------------------------------
# Parameter <-> initializer mapping
# --------------------------------------------------------------------------

def _key(a):
    a = np.ascontiguousarray(a)
    return (str(a.dtype), tuple(a.shape), hashlib.sha1(a.tobytes()).hexdigest())


def _flat_key(a):
    """_key without the shape: a parameter's values kept in order under another shape."""
    a = np.ascontiguousarray(a)
    return (str(a.dtype), a.size, hashlib.sha1(a.tobytes()).hexdigest())


@functools.lru_cache(maxsize=None)
def _bf16_dtype():
    """The numpy dtype the installed onnx's numpy_helper gives bfloat16 initializers: ml_dtypes'
    bfloat16 (onnx >= 1.15) or float32 (older onnx widens them)."""
    probe = onnx.helper.make_tensor("probe", onnx.TensorProto.BFLOAT16, [1], [1.0])
    return onnx.numpy_helper.to_array(probe).dtype


def _numpy(t):
    """A parameter's values as numpy_helper.to_array gives an initializer of its dtype, so keys and
    comparisons match (numpy itself has no bfloat16)."""
    t = t.detach().cpu()
    if t.dtype != torch.bfloat16:
        return t.numpy()
    dt = _bf16_dtype()
    if dt == np.float32:
        return t.float().numpy()
    return t.contiguous().view(torch.int16).numpy().view(dt)


def _is_uniform(a):
    return a.size <= 1 or bool(np.all(a == a.reshape(-1)[0]))


def unused_parameters(module, example_inputs):
    """Names of trainable parameters that forward() does not use (PyTorch never updates them, so
    an exporter may drop them).  Uses autograd.grad: the module's .grad fields stay untouched."""
    named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    if not named:
        return set()
    was_training = module.training
    module.train()
    try:
        loss = module(*example_inputs)
        grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
    finally:
        module.train(was_training)
    return {n for (n, _), g in zip(named, grads) if g is None}


def map_parameters(model_proto, module, base_dir=None, unused=()):
    """Matches module.named_parameters() to the model's initializers: by name, else by identical
    values (also transposed; or, when nothing else matches, reshaped: onnxscript's optimizer folds
    torchlib's Reshape of nn.PReLU's weight to (C, 1, 1) into a new initializer).  Returns a dict with "trainable"/"frozen" mappings, "problems" (each
    a reason the file would not train exactly PyTorch's parameters), "duplicates" (initializers
    holding a copy of a parameter), "buffers" and "constants" (the other initializers)."""
    if base_dir is not None:
        onnx.external_data_helper.load_external_data_for_model(model_proto, base_dir)
    inits = {}
    for t in model_proto.graph.initializer:
        inits[t.name] = onnx.numpy_helper.to_array(t)
    by_value, by_flat = {}, {}
    for nm, a in inits.items():
        by_value.setdefault(_key(a), []).append(nm)
        by_flat.setdefault(_flat_key(a), []).append(nm)
    res = {"trainable": [], "frozen": [], "problems": [], "warnings": [], "duplicates": [],
           "buffers": [], "constants": [], "unused": [], "merged": {}, "missing": [], "ambiguous": []}
    claimed = {}
    params = list(module.named_parameters())
    # An initializer named after one of the module's buffers holds that buffer, never a parameter: a
    # parameter with equal values (zeros, as BatchNorm running means and many biases start) must not
    # match it by value.
    buffer_names = {n for n, _ in module.named_buffers()}
    pending = []
    for pname, p in params:
        a = _numpy(p)
        if pname in inits and inits[pname].shape == a.shape:
            if not np.array_equal(inits[pname], a):
                res["problems"].append("initializer %r has the name of parameter %r but other values"
                                       % (pname, pname))
            claimed.setdefault(pname, []).append(pname)
            res["trainable" if p.requires_grad else "frozen"].append(
                {"initializer": pname, "torch_name": pname})
        else:
            pending.append((pname, p, a))
    for pname, p, a in pending:
        free = lambda nm: nm not in claimed and nm not in buffer_names  # noqa: E731
        cands = [(nm, False) for nm in by_value.get(_key(a), []) if free(nm)]
        if a.ndim == 2:
            cands += [(nm, True) for nm in by_value.get(_key(a.T), []) if free(nm)]
        reshaped = False
        if not cands and (a.size == 1 or not _is_uniform(a)):
            cands = [(nm, False) for nm in by_flat.get(_flat_key(a), []) if free(nm)]
            reshaped = bool(cands)
        kind = "trainable" if p.requires_grad else "frozen"
        if len(cands) == 1:
            nm, tr = cands[0]
            claimed.setdefault(nm, []).append(pname)
            e = {"initializer": nm, "torch_name": pname}
            if tr:
                e["transposed"] = True
            if reshaped:
                e["reshaped"] = list(inits[nm].shape)
            res[kind].append(e)
            continue
        if pname in unused and not cands:
            res["unused"].append(pname)
            res["warnings"].append("parameter %r is not used by forward() and has no initializer: "
                                   "neither PyTorch nor dscompile updates it" % pname)
            continue
        shared = [nm for nm in by_value.get(_key(a), []) if nm in claimed]
        if not cands and shared:
            res["merged"].setdefault(shared[0], list(claimed[shared[0]])).append(pname)
        elif not cands:
            res["missing"].append(pname)
        else:
            res["ambiguous"].append({"parameter": pname, "initializers": sorted(nm for nm, _ in cands)})
        if not cands and shared:
            msg = ("parameter %r has no initializer of its own: its values are in %r, which is "
                   "already parameter %s" % (pname, shared[0], claimed[shared[0]]))
        elif not cands:
            msg = "parameter %r %s has no initializer (folded into constants?)" % (pname, list(a.shape))
        else:
            msg = ("parameter %r matches several initializers by value: %s (name them after the "
                   "parameter)" % (pname, sorted(nm for nm, _ in cands)))
        (res["problems"] if p.requires_grad else res["warnings"]).append(msg)
    param_keys = {}
    for pname, p in params:
        a = _numpy(p)
        if not _is_uniform(a):
            param_keys[_key(a)] = pname
            if a.ndim == 2:
                param_keys[_key(a.T)] = pname
    for nm, a in inits.items():
        if nm in claimed:
            continue
        if nm in buffer_names:
            res["buffers"].append(nm)
        elif _key(a) in param_keys:
            res["duplicates"].append({"initializer": nm, "copy_of": param_keys[_key(a)]})
            res["problems"].append("initializer %r is a copy of parameter %r (training would update "
                                   "only one of them)" % (nm, param_keys[_key(a)]))
        else:
            res["constants"].append({"initializer": nm, "dtype": str(a.dtype), "shape": list(a.shape)})
    return res


def _opset(model_proto):
    for o in model_proto.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return None


def set_metadata(model_proto, value, key=METADATA_KEY):
    for p in model_proto.metadata_props:
        if p.key == key:
            p.value = value
            return
    model_proto.metadata_props.add(key=key, value=value)


def embedding_padding(module, mapping):
    """{initializer: padding_idx} for every nn.Embedding with a padding_idx whose weight is an
    initializer of its own (untransposed): ONNX's Gather cannot say that this row gets no gradient."""
    params = dict(module.named_parameters())
    init_of = {}
    for e in mapping["trainable"] + mapping["frozen"]:
        if not e.get("transposed") and e["torch_name"] in params:
            init_of[id(params[e["torch_name"]])] = e["initializer"]
    out = {}
    for mod in module.modules():
        if isinstance(mod, nn.Embedding) and mod.padding_idx is not None and id(mod.weight) in init_of:
            k = mod.padding_idx % mod.weight.shape[0]
            out[init_of[id(mod.weight)]] = int(k)
    return out


def read_metadata(model_proto):
    for p in model_proto.metadata_props:
        if p.key == METADATA_KEY:
            return json.loads(p.value)
    return None


def _unaliased(args, log):
    """The example inputs with each tensor that shares memory with an earlier one cloned.

    torch.export specialises the graph to inputs that alias: given (ids, ids) for (input_ids,
    labels), the exported program computes another function for distinct inputs (measured on a
    Mistral: loss 4.186 against PyTorch's 4.150 on the same batch), and nothing says so."""
    def storage(t):  # torch 1.13 has no untyped_storage()
        return (t.untyped_storage() if hasattr(t, "untyped_storage") else t.storage()).data_ptr()

    out = []
    for i, a in enumerate(args):
        if torch.is_tensor(a) and a.numel() > 0 and any(
                torch.is_tensor(b) and b.numel() > 0 and storage(b) == storage(a) for b in out):
            log("export_for_training: example input %d shares memory with an earlier one; exporting with a copy, "
                "as aliased example inputs make torch.export specialise the graph to them" % i)
            a = a.clone()
        out.append(a)
    return tuple(out)


def export_for_training(module, example_inputs, path, exporter="auto", opset=None, optimize=False,
                        external_data=None, log=print):
    """Exports `module` (forward(*example_inputs) -> scalar loss) to `path` for dscompile.

    Raises ExportError when the file would not hold exactly one initializer per trainable
    parameter.  Returns a dict: exporter, opset, ir_version, mapping (see map_parameters)."""
    args = _unaliased(tuple(example_inputs), log)
    with torch.no_grad():
        loss = module(*args)
    if not (torch.is_tensor(loss) and loss.dim() == 0 and loss.is_floating_point()):
        raise ExportError("%s.forward must return the scalar float loss, got %s"
                          % (type(module).__name__, getattr(loss, "shape", type(loss))))
    unused = unused_parameters(module, args)
    call, names = raw_export(module, args, path, exporter, opset, optimize, external_data, log)
    try:
        return _finish(module, path, call, names, unused, log)
    except Exception:
        # nothing half written: a file that fails the checks is not left for dscompile to find
        for f in (path, path + ".data"):
            if os.path.exists(f):
                os.remove(f)
        raise


def _finish(module, path, call, names, unused, log):
    m = onnx.load(path)
    static = [i.name for i in m.graph.input
              if not i.type.tensor_type.shape.dim or not i.type.tensor_type.shape.dim[0].dim_param]
    if static:
        raise ExportError("%s (%s): dim 0 of graph input(s) %s is not dynamic (the model's code "
                          "fixes the batch size)" % (path, call, static))
    if len(m.graph.output) != 1:
        raise ExportError("%s: %d graph outputs; forward must return only the loss"
                          % (path, len(m.graph.output)))
    mapping = map_parameters(m, module, unused=unused)
    ntrain = sum(1 for _, p in module.named_parameters() if p.requires_grad) - len(mapping["unused"])
    if len(mapping["trainable"]) != ntrain and not mapping["problems"]:
        mapping["problems"].append("%d trainable parameters, %d mapped to initializers"
                                   % (ntrain, len(mapping["trainable"])))
    if mapping["problems"]:
        raise ExportError("%s (%s): not exactly one initializer per trainable parameter:\n  %s"
                          % (path, call, "\n  ".join(mapping["problems"])))
    for w in mapping["warnings"]:
        log("export_for_training: warning: %s" % w)
    opset_v = _opset(m)
    desc = "%s, torch %s, opset %s" % (call, torch.__version__, opset_v)
    meta = {"version": 1, "exporter": desc,
            "trainable": mapping["trainable"], "frozen": mapping["frozen"]}
    m = onnx.load(path, load_external_data=False)
    set_metadata(m, json.dumps(meta, sort_keys=True))
    padding = embedding_padding(module, mapping)
    if padding:
        set_metadata(m, json.dumps(padding, sort_keys=True), key=PADDING_KEY)
    onnx.save(m, path)
    onnx.checker.check_model(path, full_check=False)
    graph_inputs = [i.name for i in onnx.load(path, load_external_data=False).graph.input]
    if graph_inputs != list(names):
        raise ExportError("%s: graph inputs %s, expected forward()'s %s" % (path, graph_inputs, names))
    log("export_for_training: %s -> %s: %s; opset %s, IR %d; %d trainable parameters (%d elements), "
        "%d frozen, %d other initializers"
        % (type(module).__name__, path, call, opset_v, m.ir_version, len(mapping["trainable"]),
           sum(p.numel() for n, p in module.named_parameters() if p.requires_grad and n not in unused),
           len(mapping["frozen"]), len(mapping["buffers"]) + len(mapping["constants"])))
    return {"exporter": desc, "call": call, "opset": opset_v, "ir_version": m.ir_version,
            "inputs": names, "mapping": mapping}


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

def _load_factory(spec):
    if ":" not in spec:
        raise ExportError("factory %r: expected FILE.py:FUNCTION" % spec)
    fname, func = spec.rsplit(":", 1)
    s = importlib.util.spec_from_file_location("_dsc_factory", fname)
    if s is None:
        raise ExportError("factory %r: cannot import %s" % (spec, fname))
    mod = importlib.util.module_from_spec(s)
    sys.path.insert(0, os.path.dirname(os.path.abspath(fname)))
    s.loader.exec_module(mod)
    if not hasattr(mod, func):
        raise ExportError("factory %r: %s has no %s" % (spec, fname, func))
    out = getattr(mod, func)()
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], nn.Module)):
        raise ExportError("factory %r must return (nn.Module, example_inputs tuple)" % spec)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("factory", nargs="?", help="FILE.py:FUNC returning (module, example_inputs)")
    ap.add_argument("-o", "--out", help="output .onnx")
    ap.add_argument("--exporter", choices=("auto", "dynamo", "legacy"), default="auto")
    ap.add_argument("--opset", type=int, default=None,
                    help="default: the exporter's (dynamo) or %d (legacy)" % LEGACY_OPSET)
    ap.add_argument("--optimize", action="store_true",
                    help="run the dynamo exporter's optimizer (merges parameters: usually refused)")
    ap.add_argument("--external-data", action="store_true", default=None,
                    help="weights in a side file (default: only past 1 GiB)")
    ap.add_argument("--show", metavar="FILE.onnx", help="print the parameter list recorded in FILE")
    a = ap.parse_args(argv)
    try:
        if a.show:
            meta = read_metadata(onnx.load(a.show, load_external_data=False))
            if meta is None:
                print("%s: no %s metadata" % (a.show, METADATA_KEY), file=sys.stderr)
                return 1
            print(json.dumps(meta, indent=1))
            return 0
        if not a.factory or not a.out:
            ap.error("expected FACTORY and -o OUT.onnx (or --show FILE)")
        module, inputs = _load_factory(a.factory)
        export_for_training(module, inputs, a.out, a.exporter, a.opset, a.optimize, a.external_data)
        return 0
    except ExportError as e:
        print("export_for_training: error: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
