#!/opt/torchenv/bin/python
"""Generates data/transformer_cases.json (read by transformer_cases_test): RMSNormalization,
RotaryEmbedding, Attention (opsets 23/24) and their gradient kernels, one-node cases in the
format of gen_nn_cases.py.

Needs torch >= 2.5 and onnx >= 1.18 (the ops are opset 23), so run it with the torch 2.15 venv:
    /opt/torchenv/bin/python gen_transformer_cases.py > data/transformer_cases.json
Forward values come from ONNX's reference implementation (onnx.reference, the spec's own
numbers), each checked here against torch (F.rms_norm, F.scaled_dot_product_attention with
enable_gqa / attn_mask / is_causal, rotary by its formula) where torch has the same semantics.
Gradients come from torch.autograd in float64 of a torch transcription of the reference
(softcap, bottom-right causal offset, padded masks, fully masked rows), whose forward is checked
against onnx.reference too.
"""
import json
import sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import helper
from onnx.reference import ReferenceEvaluator

DSC = "ai.dscompile"
rng = np.random.default_rng(2323)
cases = []


def f32(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def T(a):
    if a is None:
        return None
    a = np.asarray(a)
    if a.dtype in (np.float32, np.float64):
        return {"dtype": "float", "dims": list(a.shape), "values": [float(f"{v:.9g}") for v in a.astype(np.float64).ravel()]}
    if a.dtype == np.bool_:
        return {"dtype": "bool", "dims": list(a.shape), "values": [int(v) for v in a.ravel()]}
    assert a.dtype == np.int64, a.dtype
    return {"dtype": "int64", "dims": list(a.shape), "values": [int(v) for v in a.ravel()]}


def attr(v):
    if isinstance(v, (bool, int)):
        return {"int": int(v)}
    if isinstance(v, float):
        return {"float": v}
    return {"ints": list(v)}


def case(name, op, inputs, outputs, attrs=None, domain="", rtol=1e-5, atol=1e-6):
    cases.append({"name": name, "op": op, "domain": domain, "attrs": {k: attr(v) for k, v in (attrs or {}).items()},
                  "inputs": [T(a) for a in inputs], "outputs": [T(a) for a in outputs], "rtol": rtol, "atol": atol})


def onnx_ref(op, inputs, attrs, opset, n_out=1):
    """Runs one node through onnx.reference; None inputs are omitted."""
    names = [f"i{k}" if a is not None else "" for k, a in enumerate(inputs)]
    while names and names[-1] == "":
        names.pop()
    outs = [f"o{k}" for k in range(n_out)]
    node = helper.make_node(op, names, outs, **attrs)
    vi = lambda n, a: helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
    g = helper.make_graph([node], "g", [vi(n, a) for n, a in zip(names, inputs) if n],
                          [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in outs])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    feeds = {n: a for n, a in zip(names, inputs) if n}
    return ReferenceEvaluator(m).run(None, feeds)


def t(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def np_(x):
    return x.detach().numpy()


def close(a, b, tol=1e-5):
    assert np.allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=tol, atol=tol), (a, b)


# ---------------------------------------------------------------- RMSNormalization
def rms_torch(x, s, axis, eps):
    axes = tuple(range(axis, x.dim()))
    return x * torch.rsqrt((x * x).mean(dim=axes, keepdim=True) + eps) * s


for name, shape, axis, scale_shape, eps in [("rms_last", (2, 3, 8), -1, (8,), 1e-5),
                                            ("rms_2axes", (2, 3, 4), 1, (3, 4), 1e-3),
                                            ("rms_scale_broadcast", (2, 3, 4), 1, (4,), 1e-5)]:
    x, s = f32(*shape, scale=2.0), f32(*scale_shape)
    a = axis % len(shape)
    attrs = {"axis": axis, "epsilon": eps}
    (y,) = onnx_ref("RMSNormalization", [x, s], attrs, 23)
    xt, st = t(x, True), t(s, True)
    yt = rms_torch(xt, st, a, eps)
    close(y, np_(yt))
    if scale_shape == shape[a:]:
        close(y, np_(F.rms_norm(t(x), shape[a:], t(s), eps)))
    case(name, "RMSNormalization", [x, s], [y], attrs)
    dy = f32(*shape)
    dx, ds = torch.autograd.grad(yt, [xt, st], t(dy))
    case(name.replace("rms_", "rms_grad_"), "RMSNormalizationGrad", [dy, x, s], [np_(dx), np_(ds)], attrs, DSC, atol=1e-5)
    case(name.replace("rms_", "rms_grad_dx_only_"), "RMSNormalizationGrad", [dy, x, s], [np_(dx)], attrs, DSC,
         atol=1e-5)


# ---------------------------------------------------------------- RotaryEmbedding
def rope_torch(x, cos, sin, pos, interleaved, rot, heads):
    """x: (B,H,S,D) or (B,S,H*D); the reference's formula in torch."""
    shape = x.shape
    x4 = x.transpose(1, 2) if x.dim() == 4 else x.reshape(shape[0], shape[1], heads, -1)  # (B,S,H,D)
    rot = rot or x4.shape[-1]
    if pos is not None:
        cos, sin = cos[torch.tensor(pos)], sin[torch.tensor(pos)]
    cos, sin = cos.unsqueeze(2), sin.unsqueeze(2)
    xr, rest = x4[..., :rot], x4[..., rot:]
    x1, x2 = (xr[..., 0::2], xr[..., 1::2]) if interleaved else xr.chunk(2, dim=-1)
    real, imag = cos * x1 - sin * x2, sin * x1 + cos * x2
    out = torch.stack([real, imag], -1).flatten(-2) if interleaved else torch.cat([real, imag], -1)
    out = torch.cat([out, rest], -1)
    return out.transpose(1, 2) if x.dim() == 4 else out.reshape(shape)


def angles(rows, half):
    inv = 1.0 / (10000.0 ** (np.arange(half) / half))
    ang = np.outer(np.arange(rows), inv)
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


for name, x, pos_rows, interleaved, rot, heads in [("rope_4d_pos", f32(2, 2, 3, 8), 5, 0, 0, 0),
                                                   ("rope_4d_pos_interleaved_partial", f32(1, 3, 4, 8), 6, 1, 4, 0),
                                                   ("rope_3d_nopos", f32(2, 3, 2 * 6), 0, 0, 0, 2),
                                                   ("rope_3d_nopos_interleaved_partial", f32(2, 3, 2 * 8), 0, 1, 4, 2)]:
    b, s = x.shape[0], (x.shape[2] if x.ndim == 4 else x.shape[1])
    d = x.shape[3] if x.ndim == 4 else x.shape[2] // heads
    half = (rot or d) // 2
    if pos_rows:
        cos, sin = angles(pos_rows, half)
        pos = rng.integers(0, pos_rows, size=(b, s)).astype(np.int64)
    else:
        c, sn = angles(b * s + 3, half)
        cos, sin = c[3:].reshape(b, s, half), sn[3:].reshape(b, s, half)
        pos = None
    attrs = {"interleaved": interleaved}
    if rot:
        attrs["rotary_embedding_dim"] = rot
    if heads:
        attrs["num_heads"] = heads
    (y,) = onnx_ref("RotaryEmbedding", [x, cos, sin, pos], attrs, 23)
    xt = t(x, True)
    yt = rope_torch(xt, t(cos), t(sin), pos, interleaved, rot, heads)
    close(y, np_(yt))
    case(name, "RotaryEmbedding", [x, cos, sin, pos], [y], attrs)
    # The gradient builder's identity: dX = RotaryEmbedding(dY, cos, -sin, pos).
    dy = f32(*x.shape)
    (dx,) = torch.autograd.grad(yt, [xt], t(dy))
    case(name.replace("rope_", "rope_grad_negsin_"), "RotaryEmbedding", [dy, cos, -sin, pos], [np_(dx)], attrs)


# ---------------------------------------------------------------- Attention
def attention_torch(q, k, v, mask, pk, pv, nonpad, causal, qh, kvh, scale, softcap):
    """The reference's _compute_attention in torch (float64), returning Y."""
    three = q.dim() == 3
    if three:
        to4 = lambda a, h: a.reshape(a.shape[0], a.shape[1], h, -1).transpose(1, 2)
        q, k, v = to4(q, qh), to4(k, kvh), to4(v, kvh)
    if pk is not None:
        k, v = torch.cat([pk, k], 2), torch.cat([pv, v], 2)
    S, L = q.shape[2], k.shape[2]
    scale = 1 / np.sqrt(q.shape[3]) if scale is None else scale
    scale = float(np.float32(np.sqrt(scale))) ** 2
    bias = torch.zeros(S, L, dtype=torch.float64)
    if mask is not None:
        if isinstance(mask, torch.Tensor):
            m = mask
        elif mask.dtype == np.bool_:
            m = torch.where(torch.tensor(mask), 0.0, -np.inf).double()
        else:
            m = t(mask)
        pad = L - m.shape[-1]
        if pad:
            m = torch.cat([m, torch.full(m.shape[:-1] + (pad,), -np.inf, dtype=torch.float64)], -1)
        bias = bias + m
    if causal:
        i, j = torch.arange(S).reshape(S, 1), torch.arange(L).reshape(1, L)
        if pk is not None:
            off = torch.tensor(pk.shape[2])
        elif nonpad is not None:
            off = torch.tensor(nonpad).reshape(-1, 1, 1, 1) - S
        else:
            off = torch.tensor(0)
        bias = bias + torch.where(j <= i + off, 0.0, -np.inf).double()
    if nonpad is not None:
        keep = torch.arange(L).reshape(1, L) < torch.tensor(nonpad).reshape(-1, 1)
        bias = bias + torch.where(keep, 0.0, -np.inf).double().reshape(-1, 1, 1, L)
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    s = scale * q @ k.transpose(-1, -2)
    if softcap:
        s = softcap * torch.tanh(s / softcap)
    z = s + bias
    dead = torch.isneginf(bias.amax(-1, keepdim=True)).expand_as(z)
    p = torch.softmax(torch.where(dead, 0.0, z), -1)
    p = torch.where(dead, 0.0, p)
    y = p @ v
    if three:
        y = y.transpose(1, 2).reshape(y.shape[0], S, -1)
    return y


def attention_case(name, q, k, v, mask=None, pk=None, pv=None, nonpad=None, causal=0, qh=0, kvh=0, scale=None,
                   softcap=0.0, sdpa=False, grad=True, mask_grad=False):
    opset = 24 if nonpad is not None else 23
    attrs = {}
    if causal:
        attrs["is_causal"] = 1
    if qh:
        attrs["q_num_heads"], attrs["kv_num_heads"] = qh, kvh
    if scale is not None:
        attrs["scale"] = scale
    if softcap:
        attrs["softcap"] = softcap
    inputs = [q, k, v, mask, pk, pv, nonpad]
    (y,) = onnx_ref("Attention", inputs, attrs, opset)
    qt, kt, vt = t(q, True), t(k, True), t(v, True)
    mt = t(mask, True) if mask_grad else mask
    yt = attention_torch(qt, kt, vt, mt, None if pk is None else t(pk), None if pv is None else t(pv), nonpad, causal,
                         qh, kvh, scale, softcap)
    close(y, np_(yt))
    if sdpa:
        m = None if mask is None else t(mask) if mask.dtype != np.bool_ else torch.tensor(mask)
        ys = F.scaled_dot_product_attention(t(q), t(k), t(v), attn_mask=m, is_causal=bool(causal), scale=scale,
                                            enable_gqa=q.shape[1] != k.shape[1])
        close(y, np_(ys))
    case(name, "Attention", inputs, [y], attrs)
    if not grad:
        return
    dy = f32(*y.shape)
    wrt = [qt, kt, vt] + ([mt] if mask_grad else [])
    gs = [np_(g) for g in torch.autograd.grad(yt, wrt, t(dy))]
    case(name.replace("attn_", "attn_grad_"), "AttentionGrad", [dy] + inputs, gs, attrs, DSC, atol=1e-5)


attention_case("attn_4d_basic", f32(2, 2, 3, 4), f32(2, 2, 5, 4), f32(2, 2, 5, 4), sdpa=True)
attention_case("attn_4d_causal", f32(1, 2, 4, 4), f32(1, 2, 4, 4), f32(1, 2, 4, 6), causal=1, sdpa=True)
attention_case("attn_4d_gqa_float_mask", f32(2, 4, 3, 4), f32(2, 2, 5, 4), f32(2, 2, 5, 4), mask=f32(2, 1, 3, 5),
               sdpa=True, mask_grad=True)
attention_case("attn_3d_gqa_causal_float_mask", f32(2, 3, 4 * 4), f32(2, 5, 2 * 4), f32(2, 5, 2 * 3),
               mask=f32(3, 5), causal=1, qh=4, kvh=2, mask_grad=True)
bool_mask = rng.random((2, 1, 3, 5)) > 0.3
bool_mask[0, 0, 1, :] = False  # a fully masked row: its output and gradients are 0
attention_case("attn_bool_mask_softcap_scale", f32(2, 2, 3, 4, scale=3.0), f32(2, 2, 5, 4, scale=3.0),
               f32(2, 2, 5, 4), mask=bool_mask, scale=0.3, softcap=2.0)
attention_case("attn_past_short_mask_causal", f32(2, 2, 3, 4), f32(2, 2, 3, 4), f32(2, 2, 3, 4), mask=f32(3, 4),
               pk=f32(2, 2, 2, 4), pv=f32(2, 2, 2, 4), causal=1)
attention_case("attn_nonpad", f32(2, 2, 3, 4), f32(2, 2, 5, 4), f32(2, 2, 5, 4), nonpad=np.array([5, 3], np.int64))
attention_case("attn_nonpad_causal_softcap", f32(2, 2, 3, 4), f32(2, 2, 5, 4), f32(2, 2, 5, 4),
               nonpad=np.array([4, 3], np.int64), causal=1, softcap=1.5)

json.dump({"cases": cases}, sys.stdout, indent=None, separators=(",", ":"))
sys.stdout.write("\n")
