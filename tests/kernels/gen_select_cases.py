#!/opt/torchenv/bin/python
"""Cases for tests/kernels/select_test.cc: TopK, ArgMax, ArgMin and ReduceProd on data.

Expectations come from torch 2.15 (torch.topk, torch.sort(stable=True), torch.argmax/argmin,
torch.prod) and, for what torch does not write (select_last_index, tie order), from
onnx.reference, which the generator also checks torch against where both define the answer.
Tie order: ONNX's (lower index first, largest and smallest alike) = torch.sort(stable=True); the
cases with ties take their expectation from it (torch.topk's own CPU tie order is not stable).

    /opt/torchenv/bin/python tests/kernels/gen_select_cases.py   # writes data/select_cases.json
"""
import json
import os

import numpy as np
import onnx
import torch
from onnx import helper
from onnx.reference import ReferenceEvaluator

HERE = os.path.dirname(os.path.abspath(__file__))
cases = []


def onnx_run(op, x, attrs, k=None, opset=20, n_out=1):
    ins = [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(x.shape))]
    names = ["x"]
    inits = []
    if k is not None:
        inits.append(helper.make_tensor("k", onnx.TensorProto.INT64, [1], [k]))
        names.append("k")
    outs = ["y%d" % i for i in range(n_out)]
    node = helper.make_node(op, names, outs, **attrs)
    g = helper.make_graph([node], "g", ins, [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in outs], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    return ReferenceEvaluator(m).run(None, {"x": x})


def flat(a):
    return [float(v) if not np.isnan(v) else "nan" for v in np.asarray(a, dtype=np.float64).reshape(-1)]


def add_topk(name, x, k, axis=-1, largest=1, ties=False):
    t = torch.from_numpy(x)
    if ties:
        s = torch.sort(t, dim=axis, descending=bool(largest), stable=True)
        v, i = s.values.narrow(axis, 0, k), s.indices.narrow(axis, 0, k)
        rv, ri = onnx_run("TopK", x, {"axis": axis, "largest": largest, "sorted": 1}, k=k, n_out=2)
        assert np.array_equal(ri, i.numpy()) and np.array_equal(rv, v.numpy(), equal_nan=True), name
        src = "torch.sort(stable=True) (= onnx.reference)"
    else:
        v, i = torch.topk(t, k, dim=axis, largest=bool(largest), sorted=True)
        src = "torch.topk"
    cases.append({"name": name, "op": "TopK", "attrs": {"axis": axis, "largest": largest, "sorted": 1}, "k": k,
                  "x_dims": list(x.shape), "x": flat(x), "y_dims": list(v.shape), "values": flat(v.numpy()),
                  "indices": [int(j) for j in i.numpy().reshape(-1)], "source": src})


def add_arg(name, op, x, axis=0, keepdims=1, select_last=0, dtype="float32"):
    t = torch.from_numpy(x.astype(dtype))
    (r,) = onnx_run(op, x, {"axis": axis, "keepdims": keepdims, "select_last_index": select_last})
    if select_last:
        y, src = r, "onnx.reference"
    else:
        f = torch.argmax if op == "ArgMax" else torch.argmin
        y = f(t, dim=axis, keepdim=bool(keepdims)).numpy()
        if not np.isnan(x).any():
            assert np.array_equal(y, r), name
        src = "torch.%s" % op.lower()
    cases.append({"name": name, "op": op, "attrs": {"axis": axis, "keepdims": keepdims, "select_last_index": select_last},
                  "dtype": dtype, "x_dims": list(x.shape), "x": flat(x), "y_dims": list(y.shape),
                  "indices": [int(j) for j in np.asarray(y).reshape(-1)], "source": src})


def add_prod(name, x, axes, keepdims):
    y = torch.from_numpy(x).to(torch.float64).prod(dim=axes[0], keepdim=bool(keepdims)) if len(axes) == 1 else None
    if y is None:
        y = torch.from_numpy(x).to(torch.float64)
        for a in sorted(axes, reverse=True):
            y = y.prod(dim=a, keepdim=bool(keepdims))
    cases.append({"name": name, "op": "ReduceProd", "attrs": {"keepdims": keepdims}, "axes": axes,
                  "x_dims": list(x.shape), "x": flat(x), "y_dims": list(y.shape), "values": flat(y.numpy()),
                  "source": "torch.prod"})


rs = np.random.RandomState(0)
f32 = lambda *s: rs.standard_normal(s).astype(np.float32)
# TopK: a router (experts last), a sequence axis in the middle, smallest, k = extent (torch.sort), k = 1.
add_topk("router_top2_of_4", f32(6, 4), 2)
add_topk("axis1_top3", f32(2, 7, 5), 3, axis=1)
add_topk("axis0_smallest", f32(9, 3), 4, axis=0, largest=0)
add_topk("sort_descending_full", f32(3, 11), 11)
add_topk("sort_ascending_full_axis_neg2", f32(2, 8, 3), 8, axis=-2, largest=0)
add_topk("k1_long_line", f32(2, 300), 1)
add_topk("k0", f32(3, 4), 0)
ties = rs.randint(0, 3, size=(4, 9)).astype(np.float32)
add_topk("ties_largest_lower_index_first", ties, 5, ties=True)
add_topk("ties_smallest_lower_index_first", ties, 6, largest=0, ties=True)
add_topk("ties_axis0", rs.randint(0, 2, size=(7, 3)).astype(np.float32), 7, axis=0, ties=True)
nan = f32(2, 6)
nan[0, 3] = np.nan
nan[1, 0] = np.nan
add_topk("nan_largest_first", nan, 3)
add_topk("nan_smallest_last", nan, 6, largest=0)
# ArgMax / ArgMin.
add_arg("argmax_last_axis", "ArgMax", f32(3, 7), axis=-1, keepdims=0)
add_arg("argmax_axis1_keepdims", "ArgMax", f32(2, 5, 3), axis=1)
add_arg("argmin_axis0", "ArgMin", f32(6, 4), axis=0, keepdims=0)
tie = rs.randint(0, 3, size=(3, 8)).astype(np.float32)
add_arg("argmax_ties_first", "ArgMax", tie, axis=1, keepdims=0)
add_arg("argmin_ties_first", "ArgMin", tie, axis=1)
add_arg("argmax_ties_select_last", "ArgMax", tie, axis=1, keepdims=0, select_last=1)
add_arg("argmin_ties_select_last", "ArgMin", tie, axis=0, keepdims=1, select_last=1)
add_arg("argmax_nan", "ArgMax", nan, axis=1, keepdims=0)
add_arg("argmin_nan", "ArgMin", nan, axis=1, keepdims=0)
# GPT-2's sequence classifier: the first pad position of (input_ids == pad).int(), an int32 ArgMax.
pad = (rs.random_sample((4, 16)) < 0.3).astype(np.float32)
add_arg("argmax_int32_pad_positions", "ArgMax", pad, axis=-1, keepdims=0, dtype="int32")
# ReduceProd on data, zeros included.
p = (0.5 + rs.random_sample((3, 4, 5))).astype(np.float32)
p[0, 1, 2] = 0
add_prod("prod_axis1", p, [1], 0)
add_prod("prod_axes_0_2_keepdims", p, [0, 2], 1)
add_prod("prod_last", p, [2], 1)

with open(os.path.join(HERE, "data", "select_cases.json"), "w") as f:
    json.dump({"generator": "tests/kernels/gen_select_cases.py (torch %s, onnx %s)" % (torch.__version__, onnx.__version__),
               "cases": cases}, f, separators=(",", ":"))
print(len(cases), "cases")
