#!/opt/torchenv/bin/python
"""Writes rnn_cases.json for decompose_rnn_test.cc: small LSTM/GRU/RNN models (ONNX text) with
seeded inputs and their outputs.

Variants onnx.reference computes (default activations, no clip, no input_forget) take its numbers.
It ignores activations, activation_alpha/beta, clip and input_forget, so cases using those take
the numbers of spec() below: the ONNX operator definitions (onnx/defs/rnn/defs.cc) written out in
numpy, which is first checked against onnx.reference on every default case.

    /opt/torchenv/bin/python tests/frontend/gen_rnn_cases.py   # rewrites tests/frontend/rnn_cases.json
"""
import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, printer
from onnx.reference import ReferenceEvaluator

T, BATCH, INPUT, HIDDEN = 3, 2, 3, 4
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
OPSET = 20


def act(name, alpha, beta):
    n = name.lower()
    if n == "sigmoid": return lambda x: 1 / (1 + np.exp(-x))
    if n == "tanh": return np.tanh
    if n == "relu": return lambda x: np.maximum(x, 0)
    if n == "softsign": return lambda x: x / (1 + np.abs(x))
    if n == "softplus": return lambda x: np.log1p(np.exp(x))
    if n == "leakyrelu": return lambda x: np.where(x >= 0, x, alpha * x)
    if n == "elu": return lambda x: np.where(x >= 0, x, alpha * (np.exp(x) - 1))
    if n == "hardsigmoid": return lambda x: np.clip(alpha * x + beta, 0, 1)
    raise ValueError(name)


DEFAULT_ALPHA = {"leakyrelu": 0.01, "elu": 1.0, "hardsigmoid": 0.2}
DEFAULT_BETA = {"hardsigmoid": 0.5}


def spec(op, attrs, X, W, R, B=None, seq_lens=None, h0=None, c0=None, P=None):
    """The ONNX definitions of LSTM (iofc), GRU (zrh) and RNN, in float64."""
    dirs = W.shape[0]
    H = R.shape[-1]
    layout = attrs.get("layout", 0)
    if layout:
        X = X.swapaxes(0, 1)
        h0 = None if h0 is None else h0.swapaxes(0, 1)
        c0 = None if c0 is None else c0.swapaxes(0, 1)
    T_, N = X.shape[0], X.shape[1]
    per_dir = {"LSTM": 3, "GRU": 2, "RNN": 1}[op]
    names = attrs.get("activations") or {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}[op] * dirs
    if len(names) == per_dir and dirs == 2: names = names * 2
    alphas, betas = list(attrs.get("activation_alpha", [])), list(attrs.get("activation_beta", []))
    fns = []
    for nm in names:  # alpha/beta consumed in order by the functions that take them
        a = alphas.pop(0) if nm.lower() in DEFAULT_ALPHA and alphas else DEFAULT_ALPHA.get(nm.lower())
        b = betas.pop(0) if nm.lower() in DEFAULT_BETA and betas else DEFAULT_BETA.get(nm.lower())
        fns.append(act(nm, a, b))
    clip = attrs.get("clip")
    cl = (lambda x: np.clip(x, -clip, clip)) if clip else (lambda x: x)
    G = GATES[op]
    B = np.zeros((dirs, 2 * G * H)) if B is None else B
    h0 = np.zeros((dirs, N, H)) if h0 is None else h0
    c0 = np.zeros((dirs, N, H)) if c0 is None else c0
    P = np.zeros((dirs, 3 * H)) if P is None else P
    direction = attrs.get("direction", "forward")
    Y = np.zeros((T_, dirs, N, H)); Yh = np.zeros((dirs, N, H)); Yc = np.zeros((dirs, N, H))
    for d in range(dirs):
        f = fns[d * per_dir:(d + 1) * per_dir]
        w, r, wb, rb = W[d], R[d], B[d][:G * H], B[d][G * H:]
        h, c = h0[d], c0[d]
        steps = range(T_ - 1, -1, -1) if (d == 1 or direction == "reverse") else range(T_)
        for t in steps:
            x = X[t]
            if op == "LSTM":
                g = x @ w.T + h @ r.T + wb + rb
                i, o, fg, cc = np.split(g, 4, -1)
                pi, po, pf = np.split(P[d], 3)
                i = f[0](cl(i + pi * c))
                fg = 1 - i if attrs.get("input_forget") else f[0](cl(fg + pf * c))
                c = fg * c + i * f[1](cl(cc))
                o = f[0](cl(o + po * c))
                h = o * f[2](c)
            elif op == "GRU":
                wz, wr, wh = np.split(w, 3); rz, rr, rh = np.split(r, 3)
                wbz, wbr, wbh = np.split(wb, 3); rbz, rbr, rbh = np.split(rb, 3)
                z = f[0](cl(x @ wz.T + h @ rz.T + wbz + rbz))
                rr_ = f[0](cl(x @ wr.T + h @ rr.T + wbr + rbr))
                if attrs.get("linear_before_reset"):
                    hh = f[1](cl(x @ wh.T + rr_ * (h @ rh.T + rbh) + wbh))
                else:
                    hh = f[1](cl(x @ wh.T + (rr_ * h) @ rh.T + rbh + wbh))
                h = (1 - z) * hh + z * h
            else:
                h = f[0](cl(x @ w.T + h @ r.T + wb + rb))
            Y[t, d] = h
        Yh[d], Yc[d] = h, c
    if layout:
        Y, Yh, Yc = Y.transpose(2, 0, 1, 3), Yh.transpose(1, 0, 2), Yc.transpose(1, 0, 2)
    return [Y, Yh, Yc][: {"LSTM": 3, "GRU": 2, "RNN": 2}[op]]


INPUT_NAMES = {"LSTM": ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"],
               "GRU": ["X", "W", "R", "B", "sequence_lens", "initial_h"],
               "RNN": ["X", "W", "R", "B", "sequence_lens", "initial_h"]}


def short(v):
    """float32 values in their shortest round-tripping form."""
    return [float(np.format_float_positional(x, unique=True)) for x in np.asarray(v, np.float32).ravel()]


def case(name, op, attrs, inputs=("B",), outputs=None, reference="onnx.reference"):
    rng = np.random.default_rng(sum(map(ord, name)))
    dirs = 2 if attrs.get("direction") == "bidirectional" else 1
    layout = attrs.get("layout", 0)
    G = GATES[op]
    shapes = {"X": [T, BATCH, INPUT] if not layout else [BATCH, T, INPUT], "W": [dirs, G * HIDDEN, INPUT],
              "R": [dirs, G * HIDDEN, HIDDEN], "B": [dirs, 2 * G * HIDDEN],
              "initial_h": [dirs, BATCH, HIDDEN] if not layout else [BATCH, dirs, HIDDEN],
              "initial_c": [dirs, BATCH, HIDDEN] if not layout else [BATCH, dirs, HIDDEN], "P": [dirs, 3 * HIDDEN]}
    given = {"X", "W", "R", *inputs}
    values = {k: rng.uniform(-1, 1, shapes[k]).astype(np.float32) for k in INPUT_NAMES[op] if k in given}
    out_names = {"LSTM": ["Y", "Y_h", "Y_c"], "GRU": ["Y", "Y_h"], "RNN": ["Y", "Y_h"]}[op]
    outputs = outputs or out_names
    node_inputs = [k if k in given else "" for k in INPUT_NAMES[op]]
    while node_inputs[-1] == "": node_inputs.pop()
    node_outputs = [k if k in outputs else "" for k in out_names]
    while node_outputs[-1] == "": node_outputs.pop()
    node = helper.make_node(op, node_inputs, node_outputs, name="rnn", hidden_size=HIDDEN, **attrs)
    want = spec(op, attrs, *[values.get(k) for k in INPUT_NAMES[op]][:3],
                **{k2: values.get(k) for k, k2 in [("B", "B"), ("initial_h", "h0"), ("initial_c", "c0"), ("P", "P")]
                   if k in INPUT_NAMES[op]})
    want = dict(zip(out_names, want))
    graph = helper.make_graph(
        [node], name,
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape) for k, v in values.items()],
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, want[k].shape) for k in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=10)
    onnx.checker.check_model(model, full_check=True)
    if reference == "onnx.reference":
        got = ReferenceEvaluator(model).run(None, values)
        for k, g in zip(outputs, got):  # the numpy definition agrees with onnx.reference
            np.testing.assert_allclose(g, want[k], rtol=1e-5, atol=1e-6, err_msg=f"{name} {k}")
        result = dict(zip(outputs, got))
    else:
        result = {k: want[k] for k in outputs}
    return {"name": name, "reference": reference, "model": printer.to_text(model),
            "inputs": {k: {"dims": list(v.shape), "values": short(v)} for k, v in values.items()},
            "outputs": {k: {"dims": list(v.shape), "values": short(v)}
                        for k, v in result.items()}}


def main():
    spec_ref = "numpy spec() (onnx.reference ignores these attributes)"
    cases = [
        case("lstm_forward", "LSTM", {}),
        case("lstm_no_bias", "LSTM", {}, inputs=()),
        case("lstm_reverse_initial_state", "LSTM", {"direction": "reverse"}, inputs=("B", "initial_h", "initial_c")),
        case("lstm_bidirectional_peepholes", "LSTM", {"direction": "bidirectional"},
             inputs=("B", "initial_h", "initial_c", "P")),
        case("lstm_layout1_bidirectional", "LSTM", {"direction": "bidirectional", "layout": 1},
             inputs=("B", "initial_h", "initial_c")),
        case("lstm_initial_h_only_state_outputs", "LSTM", {}, inputs=("B", "initial_h"), outputs=["Y_h", "Y_c"]),
        case("lstm_peepholes_no_initial_state", "LSTM", {}, inputs=("B", "P")),
        case("gru_bidirectional_linear_before_reset_layout1", "GRU",
             {"direction": "bidirectional", "layout": 1, "linear_before_reset": 1}),
        case("gru_linear_before_reset_initial_h", "GRU", {"linear_before_reset": 1}, inputs=("B", "initial_h")),
        case("gru_forward_initial_h", "GRU", {}, inputs=("B", "initial_h")),
        case("gru_reverse_no_bias", "GRU", {"direction": "reverse"}, inputs=()),
        case("gru_linear_before_reset_no_bias_y_h", "GRU", {"linear_before_reset": 1}, inputs=("initial_h",),
             outputs=["Y_h"]),
        case("rnn_forward", "RNN", {}),
        case("rnn_bidirectional_layout1_initial_h", "RNN", {"direction": "bidirectional", "layout": 1},
             inputs=("B", "initial_h")),
        case("lstm_clip_input_forget_activations", "LSTM",
             {"clip": 0.7, "input_forget": 1, "activations": ["HardSigmoid", "LeakyRelu", "Softsign"],
              "activation_alpha": [0.3, 0.2], "activation_beta": [0.4]},
             inputs=("B", "initial_h", "initial_c", "P"), reference=spec_ref),
        case("lstm_bidirectional_activations_defaults", "LSTM",
             {"direction": "bidirectional", "activations": ["Sigmoid", "Elu", "Relu", "HardSigmoid", "Tanh", "Softplus"]},
             inputs=("B", "initial_h", "initial_c"), reference=spec_ref),
        case("gru_clip_activations", "GRU",
             {"clip": 0.5, "linear_before_reset": 1, "activations": ["HardSigmoid", "Softsign"]},
             inputs=("B", "initial_h"), reference=spec_ref),
        case("gru_bidirectional_shared_activations", "GRU",
             {"direction": "bidirectional", "activations": ["Sigmoid", "Relu"]}, inputs=("B", "initial_h"),
             reference=spec_ref),
        case("rnn_relu_clip", "RNN", {"activations": ["Relu"], "clip": 0.8}, inputs=("B", "initial_h"),
             reference=spec_ref),
    ]
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rnn_cases.json")
    with open(out, "w") as f:
        json.dump({"generator": "tests/frontend/gen_rnn_cases.py", "onnx": onnx.__version__, "cases": cases}, f,
                  separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(cases)} cases to {out} ({os.path.getsize(out)} bytes)")


if __name__ == "__main__":
    main()
