# Writes data/core_cases.json: one-node cases for the core CPU kernels, expectations from numpy/torch.
# Run with torch 2.x:  /opt/torchenv/bin/python tests/kernels/gen_core_cases.py  (Debian's torch 1.13 traps
# on the Mod case INT64_MIN % -1; its output differs from 2.15's only in one Erf value's last digit)
import json
import math
import os

import numpy as np
import torch

rng = np.random.default_rng(20240)
CASES = []
I64_MAX = np.iinfo(np.int64).max
I64_MIN = np.iinfo(np.int64).min

NP_NAME = {np.float32: "float", np.float16: "float16", np.float64: "double", np.int64: "int64",
           np.int32: "int32", np.int8: "int8", np.uint8: "uint8", np.bool_: "bool"}
ONNX_CODE = {"float": 1, "uint8": 2, "int8": 3, "int32": 6, "int64": 7, "bool": 9, "float16": 10,
             "double": 11, "bfloat16": 16}
# Every dtype the movement kernels are registered for.
MOVEMENT_DTYPES = ["float", "float16", "bfloat16", "double", "int64", "int32", "int8", "uint8", "bool"]


def num(v):
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return int(v) if v.is_integer() and abs(v) < 2**53 else v


def T(a, dtype=None, const=False):
    """A tensor entry; `dtype` overrides the name (bfloat16 values are carried as float32)."""
    a = np.asarray(a)
    name = dtype or NP_NAME[a.dtype.type]
    if a.dtype.kind in "iub":
        vals = [int(x) for x in a.reshape(-1)]
    elif a.dtype in (np.float32, np.float16):  # shortest text that reads back to the same value
        vals = [num(float(str(x))) if np.isfinite(x) else num(x) for x in a.reshape(-1)]
    else:
        vals = [num(x) for x in a.reshape(-1)]
    return {"dtype": name, "dims": list(a.shape), "values": vals, "const": const}


def case(group, name, op, inputs, outputs, attrs=None, rtol=1e-5, atol=1e-6, const_only=False):
    CASES.append({"group": group, "name": name, "op": op, "inputs": inputs, "outputs": outputs,
                  "attrs": attrs or {}, "rtol": rtol, "atol": atol, "const_only": const_only})


def f32(*shape, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


def i64(*shape, lo=-5, hi=6):
    return rng.integers(lo, hi, size=shape).astype(np.int64)


def ints(v):
    return np.asarray(v, dtype=np.int64)


def as_dtype(a, name):
    """Small-integer data as `name`; the result is exact in every dtype (bf16 carried as float32)."""
    if name == "bool":
        return (np.asarray(a) % 2).astype(np.bool_)
    np_t = {"float": np.float32, "float16": np.float16, "bfloat16": np.float32, "double": np.float64,
            "int64": np.int64, "int32": np.int32, "int8": np.int8, "uint8": np.uint8}[name]
    return np.asarray(a).astype(np_t)


def TD(a, name, const=False):
    return T(as_dtype(a, name), dtype=name, const=const)


def torch_f(fn, x):
    return fn(torch.from_numpy(x)).numpy()


# ---------------------------------------------------------------- elementwise unary
x = f32(3, 4)
pos = f32(3, 4, lo=0.1, hi=4.0)
big = np.array([-100.0, -20.0, -1.0, 0.0, 1.0, 20.0, 100.0, 0.5], np.float32)
unary = {
    "Neg": (x, -x), "Abs": (x, np.abs(x)), "Sqrt": (pos, np.sqrt(pos)), "Reciprocal": (pos, 1 / pos),
    "Exp": (x, np.exp(x)), "Log": (pos, np.log(pos)), "Erf": (x, torch_f(torch.erf, x)),
    "Tanh": (x, np.tanh(x)), "Sigmoid": (big, torch_f(torch.sigmoid, big)),
    "Relu": (x, np.maximum(x, 0)), "Identity": (x, x),
}
for op, (a, y) in unary.items():
    case("elementwise", f"{op}_f32", op, [T(a)], [T(y.astype(np.float32))])
case("elementwise", "Relu_empty", "Relu", [T(np.zeros((0, 3), np.float32))], [T(np.zeros((0, 3), np.float32))])
case("elementwise", "LeakyRelu_default", "LeakyRelu", [T(x)],
     [T(torch_f(lambda t: torch.nn.functional.leaky_relu(t, 0.01), x))])
case("elementwise", "LeakyRelu_alpha", "LeakyRelu", [T(x)],
     [T(torch_f(lambda t: torch.nn.functional.leaky_relu(t, 0.2), x))], attrs={"alpha": {"float": 0.2}})
xi = i64(2, 5)
case("elementwise", "Neg_i64", "Neg", [T(xi)], [T(-xi)], rtol=0, atol=0)
case("elementwise", "Abs_i64", "Abs", [T(xi)], [T(np.abs(xi))], rtol=0, atol=0)
b = rng.integers(0, 2, size=(2, 3)).astype(np.bool_)
case("elementwise", "Not_bool", "Not", [T(b)], [T(~b)], rtol=0, atol=0)
lo, hi = np.float32(-0.5), np.float32(0.75)
case("elementwise", "Clip_min_max", "Clip", [T(x), T(lo, const=True), T(hi, const=True)], [T(np.clip(x, lo, hi))])
case("elementwise", "Clip_max_only", "Clip", [T(x), None, T(hi, const=True)], [T(np.minimum(x, hi))])
case("elementwise", "Clip_no_bounds", "Clip", [T(x)], [T(x)])
case("elementwise", "Clip_i64", "Clip", [T(xi), T(np.int64(-2), const=True), T(np.int64(3), const=True)],
     [T(np.clip(xi, -2, 3))], rtol=0, atol=0)

# ---------------------------------------------------------------- elementwise binary
np_binary = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}
shapes = [((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (2, 3)), ((3, 1), (1, 4)),
          ((2, 3, 4), (2, 1, 1)), ((1, 3, 1), (2, 1, 5)), ((0, 3), (3,))]
for op, fn in np_binary.items():
    for sa, sb in shapes:
        a = f32(*sa)
        bb = f32(*sb, lo=0.5, hi=2.0) if op == "Div" else f32(*sb)
        case("elementwise", f"{op}_f32_{sa}_{sb}", op, [T(a), T(bb)], [T(fn(a, bb).astype(np.float32))])
int_binary = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply,
              "Div": lambda a, b: torch.div(torch.from_numpy(a), torch.from_numpy(b), rounding_mode="trunc").numpy(),
              "Max": np.maximum, "Min": np.minimum}
for op, fn in int_binary.items():
    a = i64(2, 3, 4, lo=-20, hi=21)
    bb = i64(3, 1, lo=1, hi=6) * np.where(rng.random((3, 1)) < 0.5, -1, 1)
    case("elementwise", f"{op}_i64", op, [T(a), T(bb)], [T(fn(a, bb))], rtol=0, atol=0)
for op, fn in {"Equal": np.equal, "Less": np.less, "Greater": np.greater}.items():
    a = f32(3, 4).round()
    bb = f32(4).round()
    case("elementwise", f"{op}_f32", op, [T(a), T(bb)], [T(fn(a, bb))], rtol=0, atol=0)
    ai, bi = i64(2, 1, 3, lo=-2, hi=3), i64(4, 1, lo=-2, hi=3)
    case("elementwise", f"{op}_i64", op, [T(ai), T(bi)], [T(fn(ai, bi))], rtol=0, atol=0)
ba, bb_ = rng.integers(0, 2, (2, 3)).astype(np.bool_), rng.integers(0, 2, (3,)).astype(np.bool_)
for op, fn in {"And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor, "Equal": np.equal}.items():
    case("elementwise", f"{op}_bool", op, [T(ba), T(bb_)], [T(fn(ba, bb_))], rtol=0, atol=0)
base = f32(2, 3, lo=0.5, hi=3.0)
e = f32(3, lo=-2.0, hi=2.0)
case("elementwise", "Pow_f32", "Pow", [T(base), T(e)], [T(np.power(base, e))])
pa = f32(2, 3)
case("elementwise", "Pow_int64_exp", "Pow", [T(pa), T(ints([[2], [3]]))], [T(np.power(pa, np.float32([[2], [3]])))])
pb = f32(4)
case("elementwise", "Pow_int32_scalar_exp", "Pow", [T(pb), T(np.int32(2), const=True)], [T(pb ** 2)])
m0, m1, m2 = f32(2, 3), f32(3), f32(1)
case("elementwise", "Max_3_inputs", "Max", [T(m0), T(m1), T(m2)], [T(np.maximum(np.maximum(m0, m1), m2))])
case("elementwise", "Min_3_inputs", "Min", [T(m0), T(m1), T(m2)], [T(np.minimum(np.minimum(m0, m1), m2))])
case("elementwise", "Max_2_inputs", "Max", [T(m0), T(m1)], [T(np.maximum(m0, m1))])
case("elementwise", "Min_1_input", "Min", [T(m0)], [T(m0)])
mi0, mi1, mi2 = i64(2, 3), i64(3), i64(2, 1)
case("elementwise", "Max_i64_3", "Max", [T(mi0), T(mi1), T(mi2)], [T(np.maximum(np.maximum(mi0, mi1), mi2))], rtol=0, atol=0)
case("elementwise", "Min_i64_3", "Min", [T(mi0), T(mi1), T(mi2)], [T(np.minimum(np.minimum(mi0, mi1), mi2))], rtol=0, atol=0)
nan = np.array([np.nan, 1.0, -1.0], np.float32)
case("elementwise", "Max_nan", "Max", [T(nan), T(np.array([0.0, np.nan, 0.0], np.float32))],
     [T(torch.maximum(torch.from_numpy(nan), torch.tensor([0.0, np.nan, 0.0])).numpy())])
cond = rng.integers(0, 2, (2, 1, 4)).astype(np.bool_)
wx, wy = f32(3, 1), np.float32(7.5)
case("elementwise", "Where_3way", "Where", [T(cond), T(wx), T(np.asarray(wy))], [T(np.where(cond, wx, wy))])
wxi, wyi = i64(4), i64(3, 1)
case("elementwise", "Where_i64", "Where", [T(cond), T(wxi), T(wyi)], [T(np.where(cond, wxi, wyi))], rtol=0, atol=0)
wxh, wyh = as_dtype(i64(4), "float16"), as_dtype(i64(3, 1), "float16")
case("elementwise", "Where_f16", "Where", [T(cond), T(wxh), T(wyh)], [T(np.where(cond, wxh, wyh))], rtol=0, atol=0)

# ---------------------------------------------------------------- Cast
cast_types = ["float", "float16", "bfloat16", "double", "int64", "int32", "bool"]
TORCH = {"float": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "double": torch.float64,
         "int64": torch.int64, "int32": torch.int32, "bool": torch.bool}
src_vals = {"float": [-2.75, -1.0, 0.0, 0.5, 1.5, 3.875, 100.3, 7.0],
            "int": [-3, -1, 0, 1, 2, 100, 7, 300], "bool": [1, 0, 1, 1, 0, 0, 1, 0]}
for s in cast_types:
    kind = "float" if s in ("float", "float16", "bfloat16", "double") else ("bool" if s == "bool" else "int")
    src = torch.tensor(src_vals[kind]).to(TORCH[s])
    src_entry = {"dtype": s, "dims": [8], "values": [num(v) for v in src.double().tolist()], "const": False}
    for d in cast_types:
        out = src.to(TORCH[d])
        case("cast", f"Cast_{s}_to_{d}", "Cast", [src_entry],
             [{"dtype": d, "dims": [8], "values": [num(v) for v in out.double().tolist()], "const": False}],
             attrs={"to": {"int": ONNX_CODE[d]}}, rtol=0, atol=0)

# ---------------------------------------------------------------- reductions
def reduce_case(name, op, a, axes, keepdims=1, noop=0, as_input=None, **kw):
    fn = {"ReduceSum": np.sum, "ReduceMean": np.mean, "ReduceMax": np.max, "ReduceMin": np.min}[op]
    as_input = op == "ReduceSum" if as_input is None else as_input
    ax = None if not axes else tuple(axes)
    y = a.copy() if (not axes and noop) else fn(a, axis=ax, keepdims=bool(keepdims))
    attrs = {"keepdims": {"int": keepdims}}
    if noop:
        attrs["noop_with_empty_axes"] = {"int": 1}
    inputs = [T(a)]
    if as_input and axes is not None:
        inputs.append(T(ints(axes), const=True))
    elif axes:
        attrs["axes"] = {"ints": list(axes)}
    case("reduce", name, op, inputs, [T(np.asarray(y).astype(a.dtype))], attrs=attrs, **kw)


r = f32(2, 3, 4)
reduce_case("ReduceSum_axis1_keep", "ReduceSum", r, [1])
reduce_case("ReduceSum_neg_axis_nokeep", "ReduceSum", r, [-1], keepdims=0)
reduce_case("ReduceSum_axes_0_2_generic", "ReduceSum", r, [0, 2], keepdims=0)
reduce_case("ReduceSum_axes_0_2_keep", "ReduceSum", r, [0, 2])
reduce_case("ReduceSum_empty_axes_all", "ReduceSum", r, [], keepdims=0)
reduce_case("ReduceSum_no_axes_input_all", "ReduceSum", r, None)
reduce_case("ReduceSum_noop_empty_axes", "ReduceSum", r, [], noop=1)
reduce_case("ReduceSum_leading_wide", "ReduceSum", f32(6, 150), [0], keepdims=0, rtol=1e-5, atol=1e-5)
reduce_case("ReduceSum_zero_size_axis", "ReduceSum", np.zeros((0, 3), np.float32), [0], keepdims=0)
reduce_case("ReduceSum_i64", "ReduceSum", i64(3, 4), [0], keepdims=0, rtol=0, atol=0)
reduce_case("ReduceMean_axis1", "ReduceMean", r, [1])
reduce_case("ReduceMean_all", "ReduceMean", r, None, keepdims=0)
reduce_case("ReduceMean_axes_input_opset18", "ReduceMean", r, [-2, -1], as_input=True)
reduce_case("ReduceMax_axis0", "ReduceMax", r, [0], keepdims=0)
reduce_case("ReduceMin_axes_neg", "ReduceMin", r, [-1, 0])
reduce_case("ReduceMax_i64", "ReduceMax", i64(3, 4), [1], rtol=0, atol=0)
reduce_case("ReduceMin_i64", "ReduceMin", i64(3, 4), [0, 1], keepdims=0, rtol=0, atol=0)

# ---------------------------------------------------------------- data movement (every dtype)
def small(*shape):
    return rng.integers(0, 10, size=shape).astype(np.int64)


for dt in MOVEMENT_DTYPES:
    g = f"movement_{dt}"
    a = small(2, 3, 4)
    case(g, f"Reshape_{dt}", "Reshape", [TD(a, dt), T(ints([4, -1]), const=True)], [TD(a.reshape(4, 6), dt)], rtol=0, atol=0)
    t4 = small(2, 3, 4, 5)
    case(g, f"Transpose_0213_{dt}", "Transpose", [TD(t4, dt)], [TD(t4.transpose(0, 2, 1, 3), dt)],
         attrs={"perm": {"ints": [0, 2, 1, 3]}}, rtol=0, atol=0)
    c0, c1 = small(2, 1, 3), small(2, 2, 3)
    case(g, f"Concat_{dt}", "Concat", [TD(c0, dt), TD(c1, dt)], [TD(np.concatenate([c0, c1], 1), dt)], attrs={"axis": {"int": 1}}, rtol=0, atol=0)
    s = small(2, 6)
    parts = np.split(s, [1, 4], axis=1)
    case(g, f"Split_{dt}", "Split", [TD(s, dt), T(ints([1, 3, 2]), const=True)], [TD(p, dt) for p in parts], attrs={"axis": {"int": -1}}, rtol=0, atol=0)
    sl = small(4, 5)
    case(g, f"Slice_{dt}", "Slice", [TD(sl, dt), T(ints([1, -1]), const=True), T(ints([3, 0]), const=True),
                                      T(ints([0, 1]), const=True), T(ints([1, -2]), const=True)],
         [TD(sl[1:3, -1:0:-2], dt)], rtol=0, atol=0)
    gd, gi = small(3, 4), ints([[-1, 0], [2, 1]])
    case(g, f"Gather_{dt}", "Gather", [TD(gd, dt), T(gi)], [TD(np.take(gd, gi, axis=1), dt)], attrs={"axis": {"int": 1}}, rtol=0, atol=0)
    ex = small(3, 1)
    case(g, f"Expand_{dt}", "Expand", [TD(ex, dt), T(ints([2, 3, 4]), const=True)], [TD(np.broadcast_to(ex, (2, 3, 4)), dt)], rtol=0, atol=0)
    tl = small(2, 3)
    case(g, f"Tile_{dt}", "Tile", [TD(tl, dt), T(ints([2, 2]), const=True)], [TD(np.tile(tl, (2, 2)), dt)], rtol=0, atol=0)
    pd = small(2, 3)
    cv = as_dtype(np.array(7), dt)
    case(g, f"Pad_{dt}", "Pad", [TD(pd, dt), T(ints([1, 0, 0, 2]), const=True), T(cv, dtype=dt, const=True)],
         [TD(np.pad(pd, ((1, 0), (0, 2)), constant_values=7), dt)], rtol=0, atol=0)
    case(g, f"Identity_{dt}", "Identity", [TD(a, dt)], [TD(a, dt)], rtol=0, atol=0)
    case(g, f"Transpose_default_{dt}", "Transpose", [TD(a, dt)], [TD(a.transpose(), dt)], rtol=0, atol=0)

g = "movement"
a = f32(2, 3, 4)
case(g, "Flatten_axis1", "Flatten", [T(a)], [T(a.reshape(2, 12))], attrs={"axis": {"int": 1}})
case(g, "Flatten_axis_neg", "Flatten", [T(a)], [T(a.reshape(6, 4))], attrs={"axis": {"int": -1}})
case(g, "Squeeze_axes", "Squeeze", [T(a.reshape(2, 1, 12, 1)), T(ints([1, -1]), const=True)], [T(a.reshape(2, 12))])
case(g, "Unsqueeze_axes", "Unsqueeze", [T(a), T(ints([0, -1]), const=True)], [T(a.reshape(1, 2, 3, 4, 1))])
for perm in ([0, 2, 3, 1], [1, 0, 2], [2, 0, 1], [3, 1, 0, 2], [0, 1, 3, 2]):
    t = f32(2, 3, 4, 5) if len(perm) == 4 else f32(3, 4, 5)
    case(g, f"Transpose_{''.join(map(str, perm))}", "Transpose", [T(t)], [T(t.transpose(perm))], attrs={"perm": {"ints": perm}})
t = f32(2, 1, 3, 1)
case(g, "Transpose_unit_dims", "Transpose", [T(t)], [T(t.transpose(3, 2, 0, 1))], attrs={"perm": {"ints": [3, 2, 0, 1]}})
t = small(70, 45).astype(np.float32)
case(g, "Transpose_2d_tiled", "Transpose", [T(t)], [T(t.T)], attrs={"perm": {"ints": [1, 0]}})
c = [f32(2, 3), f32(2, 0), f32(2, 1)]
case(g, "Concat_empty_input", "Concat", [T(v) for v in c], [T(np.concatenate(c, -1))], attrs={"axis": {"int": -1}})
s = f32(6, 2)
case(g, "Split_equal_3", "Split", [T(s)], [T(p) for p in np.split(s, 3, axis=0)])
sl = small(5, 6, 7).astype(np.float32)


def slice_case(name, starts, ends, axes=None, steps=None):
    ins = [T(sl), T(ints(starts), const=True), T(ints(ends), const=True)]
    if axes is not None or steps is not None:
        ins.append(T(ints(axes if axes is not None else list(range(len(starts)))), const=True))
    if steps is not None:
        ins.append(T(ints(steps), const=True))
    idx = [slice(None)] * 3
    for i, st in enumerate(starts):
        ax = axes[i] if axes is not None else i
        e = ends[i]
        step = steps[i] if steps is not None else 1
        # numpy slices treat out-of-range ends like ONNX's clamping; INT64_MIN/MAX as None.
        idx[ax] = slice(st, None if e in (I64_MAX, I64_MIN) else e, step)
    case(g, name, "Slice", ins, [T(sl[tuple(idx)])])


slice_case("Slice_basic", [1, 2], [4, 5])
slice_case("Slice_negative", [-3, -4], [-1, -1])
slice_case("Slice_clamped_end", [2], [1000], axes=[2])
slice_case("Slice_axes_neg_steps2", [0, 1], [I64_MAX, 6], axes=[-1, 0], steps=[2, 2])
slice_case("Slice_reverse_all", [-1], [I64_MIN], axes=[1], steps=[-1])
slice_case("Slice_neg_step3", [6, 4], [0, -100], axes=[2, 0], steps=[-3, -2])
slice_case("Slice_empty", [3], [1], axes=[0])
slice_case("Slice_start_past_end", [10], [20], axes=[1])
gd = f32(4, 3, 2)
for name, idx, axis in [("Gather_axis0_neg", ints([-1, 0, -4]), 0), ("Gather_axis_neg2_i32", np.array([[2, -3]], np.int32), -2),
                        ("Gather_scalar_index", np.asarray(np.int64(-1)), 2)]:
    case(g, name, "Gather", [T(gd), T(idx)], [T(np.take(gd, idx, axis=axis))], attrs={"axis": {"int": axis}})
case(g, "Gather_empty_indices", "Gather", [T(gd), T(np.zeros((0,), np.int64))], [T(np.take(gd, np.zeros((0,), np.int64), 0))])
ex = np.asarray(np.float32(2.5))
case(g, "Expand_scalar", "Expand", [T(ex), T(ints([2, 2]), const=True)], [T(np.broadcast_to(ex, (2, 2)))])
ex = f32(3, 1)
case(g, "Expand_rank_up_and_keep", "Expand", [T(ex), T(ints([2, 1, 1]), const=True)], [T(np.broadcast_to(ex, (2, 3, 1)))])
tl = f32(2, 1, 3)
case(g, "Tile_3d", "Tile", [T(tl), T(ints([2, 3, 1]), const=True)], [T(np.tile(tl, (2, 3, 1)))])
pd = f32(3, 4)
# pads [-1, 2, 1, -2]: drop the first row, 2 columns in front, 1 row after, drop the last 2 columns.
case(g, "Pad_negative_crops", "Pad", [T(pd), T(ints([-1, 2, 1, -2]), const=True), T(np.float32(1.5), const=True)],
     [T(np.pad(pd[1:, :-2], ((0, 1), (2, 0)), constant_values=1.5))])
case(g, "Pad_default_zero", "Pad", [T(pd), T(ints([0, 1, 2, 0]), const=True)], [T(np.pad(pd, ((0, 2), (1, 0))))])
case(g, "Pad_axes_opset18", "Pad", [T(pd), T(ints([1, 1]), const=True), None, T(ints([-1]), const=True)],
     [T(np.pad(pd, ((0, 0), (1, 1))))], const_only=True)

# ---------------------------------------------------------------- MatMul / Gemm
g = "matmul"
tol = dict(rtol=1e-4, atol=1e-5)
for name, sa, sb in [("2d", (3, 4), (4, 5)), ("1d_2d", (4,), (4, 5)), ("2d_1d", (3, 4), (4,)), ("1d_1d", (4,), (4,)),
                     ("batched", (2, 3, 4), (2, 4, 5)), ("broadcast_batch", (2, 1, 3, 4), (3, 4, 5)),
                     ("shared_weight", (2, 3, 4), (4, 5)), ("1d_batched", (4,), (2, 4, 5)),
                     ("batched_1d", (2, 3, 4), (4,)), ("broadcast_a", (3, 4), (2, 4, 5)),
                     ("k0", (3, 0), (0, 4)), ("m0", (2, 0, 4), (2, 4, 3)), ("many_small", (8, 4, 4), (8, 4, 4))]:
    a, bb = f32(*sa), f32(*sb)
    y = (a.astype(np.float64) @ bb.astype(np.float64)).astype(np.float32)
    case(g, f"MatMul_{name}", "MatMul", [T(a), T(bb)], [T(y)], **tol)
M, K, N = 3, 5, 4
for ta in (0, 1):
    for tb in (0, 1):
        for cname, cshape in [("cN", (N,)), ("cM1", (M, 1)), ("cscalar", ()), ("cfull", (M, N)), ("noC", None)]:
            a = f32(K, M) if ta else f32(M, K)
            bb = f32(N, K) if tb else f32(K, N)
            alpha, beta = 0.5, 2.0
            ref = alpha * ((a.T if ta else a).astype(np.float64) @ (bb.T if tb else bb).astype(np.float64))
            ins = [T(a), T(bb)]
            if cshape is not None:
                cc = f32(*cshape)
                ref = ref + beta * cc
                ins.append(T(cc))
            case(g, f"Gemm_tA{ta}_tB{tb}_{cname}", "Gemm", ins, [T(ref.astype(np.float32))],
                 attrs={"alpha": {"float": alpha}, "beta": {"float": beta}, "transA": {"int": ta}, "transB": {"int": tb}}, **tol)
a, bb, cc = f32(2, 3), f32(3, 4), f32(4)
case(g, "Gemm_defaults", "Gemm", [T(a), T(bb), T(cc)], [T((a.astype(np.float64) @ bb + cc).astype(np.float32))], **tol)

# ---------------------------------------------------------------- activations of current exports
F = torch.nn.functional
xa = f32(3, 5, lo=-4.0, hi=4.0)
wide = np.array([-100.0, -25.0, -3.0, -1.5, 0.0, 0.25, 2.0, 3.0, 25.0, 100.0], np.float32)
act = [("Gelu_none", "Gelu", xa, lambda t: F.gelu(t), {}),
       ("Gelu_tanh", "Gelu", xa, lambda t: F.gelu(t, approximate="tanh"), {"approximate": {"string": "tanh"}}),
       ("Mish", "Mish", wide, F.mish, {}),
       ("HardSwish", "HardSwish", xa, F.hardswish, {}),
       # ONNX HardSigmoid defaults (alpha 0.2) differ from torch's (1/6): spelled out with clamp.
       ("HardSigmoid_default", "HardSigmoid", xa, lambda t: torch.clamp(0.2 * t + 0.5, 0, 1), {}),
       ("HardSigmoid_torch", "HardSigmoid", xa, F.hardsigmoid,
        {"alpha": {"float": float(np.float32(1 / 6))}, "beta": {"float": 0.5}}),
       ("Softplus", "Softplus", wide, F.softplus, {}),
       ("Elu_default", "Elu", xa, F.elu, {}),
       ("Elu_alpha", "Elu", xa, lambda t: F.elu(t, alpha=0.5), {"alpha": {"float": 0.5}}),
       ("Selu_default", "Selu", xa, F.selu, {}),
       ("Selu_attrs", "Selu", xa, lambda t: 2.0 * torch.where(t > 0, t, 1.5 * torch.expm1(t)),
        {"alpha": {"float": 1.5}, "gamma": {"float": 2.0}}),
       ("Softsign", "Softsign", wide, F.softsign, {})]
for name, op, a, fn, attrs in act:
    y = fn(torch.from_numpy(a.astype(np.float64))).numpy().astype(np.float32)
    case("activation", name, op, [T(a)], [T(y)], attrs=attrs)
xt = f32(4, 6, lo=-10.0, hi=10.0)
case("activation", "Cos_f32", "Cos", [T(xt)], [T(np.cos(xt.astype(np.float64)).astype(np.float32))])
case("activation", "Sin_f32", "Sin", [T(xt)], [T(np.sin(xt.astype(np.float64)).astype(np.float32))])

# ---------------------------------------------------------------- IsNaN, IsInf
special = np.array([[np.nan, np.inf, -np.inf, 0.0], [1.5, -np.nan, 6.0e4, -7.0]], np.float32)
for dt, arr in [("f32", special), ("f64", special.astype(np.float64)), ("f16", special.astype(np.float16))]:
    case("float_class", f"IsNaN_{dt}", "IsNaN", [T(arr)], [T(np.isnan(arr))], rtol=0, atol=0)
    case("float_class", f"IsInf_{dt}", "IsInf", [T(arr)], [T(np.isinf(arr))], rtol=0, atol=0)
case("float_class", "IsInf_positive_only", "IsInf", [T(special)], [T(np.isposinf(special))],
     attrs={"detect_negative": {"int": 0}}, rtol=0, atol=0)
case("float_class", "IsInf_negative_only", "IsInf", [T(special)], [T(np.isneginf(special))],
     attrs={"detect_positive": {"int": 0}}, rtol=0, atol=0)


# ---------------------------------------------------------------- CumSum
def torch_cumsum(a, axis, exclusive, reverse):
    t = torch.from_numpy(a.astype(np.float64) if a.dtype.kind == "f" else a)
    if reverse:
        t = t.flip(axis)
    c = t.cumsum(axis)
    if exclusive:
        c = c - t
    if reverse:
        c = c.flip(axis)
    return c.numpy().astype(a.dtype)


xc = f32(2, 3, 4)
for exclusive in (0, 1):
    for reverse in (0, 1):
        case("cumsum", f"CumSum_axis1_ex{exclusive}_rev{reverse}", "CumSum", [T(xc), T(np.int64(1), const=True)],
             [T(torch_cumsum(xc, 1, exclusive, reverse))],
             attrs={"exclusive": {"int": exclusive}, "reverse": {"int": reverse}})
case("cumsum", "CumSum_axis_neg1_int32_axis", "CumSum", [T(xc), T(np.array([-1], np.int32), const=True)],
     [T(torch_cumsum(xc, 2, 0, 0))])
mask = rng.integers(0, 2, (2, 7)).astype(np.int64)
case("cumsum", "CumSum_i64_position_ids", "CumSum", [T(mask), T(np.int64(1), const=True)],
     [T(torch_cumsum(mask, 1, 0, 0))], rtol=0, atol=0)
case("cumsum", "CumSum_i64_axis0_exclusive_reverse", "CumSum", [T(mask), T(np.int64(0), const=True)],
     [T(torch_cumsum(mask, 0, 1, 1))], attrs={"exclusive": {"int": 1}, "reverse": {"int": 1}}, rtol=0, atol=0)

# ---------------------------------------------------------------- Trilu
tr = f32(2, 4, 5)
for name, k, upper, ref in [("upper_default", None, 1, np.triu(tr)), ("upper_k2", 2, 1, np.triu(tr, 2)),
                            ("upper_kneg1", -1, 1, np.triu(tr, -1)), ("lower_k0", 0, 0, np.tril(tr)),
                            ("lower_kneg2", -2, 0, np.tril(tr, -2)), ("lower_k3", 3, 0, np.tril(tr, 3)),
                            ("upper_k_huge", I64_MAX, 1, np.zeros_like(tr)),
                            ("lower_k_huge", I64_MAX, 0, tr), ("upper_k_tiny", I64_MIN, 1, tr),
                            ("lower_k_tiny", I64_MIN, 0, np.zeros_like(tr))]:
    ins = [T(tr)] + ([] if k is None else [T(np.int64(k), const=True)])
    case("trilu", f"Trilu_{name}", "Trilu", ins, [T(ref)], attrs={"upper": {"int": upper}})
causal = np.ones((6, 6), np.bool_)
case("trilu", "Trilu_bool_causal_mask", "Trilu", [T(causal), T(np.int64(1), const=True)], [T(np.triu(causal, 1))],
     rtol=0, atol=0)
ti = i64(3, 2)
case("trilu", "Trilu_i64_tall", "Trilu", [T(ti)], [T(np.tril(ti))], attrs={"upper": {"int": 0}}, rtol=0, atol=0)

# ---------------------------------------------------------------- CastLike
cl = np.array([-2.75, -1.0, 0.0, 0.5, 1.5, 3.875], np.float32)
case("cast", "CastLike_float_to_float16", "CastLike", [T(cl), T(np.zeros(0, np.float16))], [T(cl.astype(np.float16))],
     rtol=0, atol=0)
case("cast", "CastLike_float_to_int64", "CastLike", [T(cl), T(np.zeros((1, 1), np.int64))],
     [T(torch.from_numpy(cl).to(torch.int64).numpy())], rtol=0, atol=0)
case("cast", "CastLike_int64_to_float", "CastLike", [T(ints([-3, 0, 7])), T(np.float32(1.0))],
     [T(np.float32([-3, 0, 7]))], rtol=0, atol=0)

# ---------------------------------------------------------------- opset 18+ forms
# Opset 18 moved every Reduce*'s axes to an input (noop_with_empty_axes with it) and gave Split
# num_outputs, whose last part may be smaller; opset 19 gave Cast `saturate`, which only float8
# targets read (so float16 overflow still gives inf).
r18 = f32(2, 3, 4)
reduce_case("ReduceMax_axes_input_opset18", "ReduceMax", r18, [0, -1], keepdims=0, as_input=True)
reduce_case("ReduceMin_axes_input_opset18", "ReduceMin", r18, [1], as_input=True)
reduce_case("ReduceMean_noop_empty_axes_opset18", "ReduceMean", r18, [], noop=1, as_input=True)
reduce_case("ReduceMean_empty_axes_all_opset18", "ReduceMean", r18, [], keepdims=0, as_input=True)
reduce_case("ReduceMax_i64_axes_input_opset18", "ReduceMax", i64(3, 4), [-1], as_input=True, rtol=0, atol=0)
s18 = f32(2, 7)
case("movement", "Split_num_outputs_uneven_opset18", "Split", [T(s18)], [T(p) for p in np.split(s18, [3, 6], axis=1)],
     attrs={"axis": {"int": 1}, "num_outputs": {"int": 3}})
c19 = np.array([70000.0, -1e6, 1.5], np.float32)
with np.errstate(over="ignore"):
    c19_half = c19.astype(np.float16)
case("cast", "Cast_float_to_float16_saturate0_opset19", "Cast", [T(c19)], [T(c19_half)],
     attrs={"to": {"int": ONNX_CODE["float16"]}, "saturate": {"int": 0}}, rtol=0, atol=0)

# ---------------------------------------------------------------- GatherElements / GatherND / ScatterElements / ScatterND
# Expectations from torch (gather, scatter, scatter_reduce, index_put) and numpy advanced indexing;
# negative indices are wrapped before torch sees them (ONNX allows them, torch.gather does not).
g = "indexing"


def wrap(idx, n):
    return np.where(idx < 0, idx + n, idx)


ge = f32(3, 4)
gei = ints([[0, -1, 2, 1], [2, 0, -3, 0]])
case(g, "GatherElements_axis0_neg", "GatherElements", [T(ge), T(gei)],
     [T(torch.gather(torch.from_numpy(ge), 0, torch.from_numpy(wrap(gei, 3))).numpy())])
gei1 = np.array([[3, -4], [1, 1], [-1, 0]], np.int32)
case(g, "GatherElements_axis_neg1_i32", "GatherElements", [T(ge), T(gei1)],
     [T(torch.gather(torch.from_numpy(ge), 1, torch.from_numpy(wrap(gei1, 4).astype(np.int64))).numpy())],
     attrs={"axis": {"int": -1}})
gei2 = ints([[1, 0], [0, 2]])  # indices smaller than data along the other axis, as torch.gather allows
case(g, "GatherElements_smaller_indices", "GatherElements", [T(ge), T(gei2)],
     [T(torch.gather(torch.from_numpy(ge), 0, torch.from_numpy(gei2)).numpy())])
for dt in ("int64", "float16", "bool"):
    gd3 = small(2, 3)
    case(g, f"GatherElements_{dt}", "GatherElements", [TD(gd3, dt), T(ints([[1, 0, 2], [2, 2, 0]]))],
         [TD(np.take_along_axis(gd3, ints([[1, 0, 2], [2, 2, 0]]), 1), dt)], attrs={"axis": {"int": 1}}, rtol=0, atol=0)

gn = f32(2, 3, 4)
for name, idx, b in [("full_tuple", ints([[1, 2, 3], [0, -1, 0], [-2, 0, -4]]), 0),
                     ("partial_slices", ints([[[1, 0]], [[0, 2]]]), 0),
                     ("leading_only", ints([[1], [-2], [1]]), 0),
                     ("batch_dims1", ints([[[2], [0]], [[-1], [1]]]), 1),
                     ("batch_dims1_tuple", ints([[2, 3], [0, -1]]), 1)]:
    k = idx.shape[-1]
    if b == 0:
        ref = gn[tuple(np.moveaxis(idx, -1, 0))]
    else:
        ref = np.stack([gn[i][tuple(np.moveaxis(idx[i], -1, 0))] for i in range(gn.shape[0])])
    case(g, f"GatherND_{name}", "GatherND", [T(gn), T(idx)], [T(ref)], attrs={"batch_dims": {"int": b}})
gnd = small(3, 2)
case(g, "GatherND_int64_data", "GatherND", [T(gnd), T(ints([[2, 1], [0, 0]]))], [T(gnd[[2, 0], [1, 0]])], rtol=0, atol=0)


def scatter_nd_ref(data, idx, upd, reduction):
    """The spec's loop (defs.cc ScatterND), on torch tensors: index_put for none/add."""
    out = torch.from_numpy(data.copy())
    tup = tuple(torch.from_numpy(wrap(idx, np.array(data.shape[:idx.shape[-1]]))).unbind(-1))
    u = torch.from_numpy(upd)
    if reduction in ("none", "add"):
        return out.index_put(tup, u, accumulate=reduction == "add").numpy()
    flat_idx = wrap(idx, np.array(data.shape[:idx.shape[-1]])).reshape(-1, idx.shape[-1])
    flat_upd = upd.reshape((flat_idx.shape[0],) + data.shape[idx.shape[-1]:])
    o = data.copy()
    f = {"mul": np.multiply, "max": np.maximum, "min": np.minimum}[reduction]
    for t, tupl in enumerate(flat_idx):
        o[tuple(tupl)] = f(o[tuple(tupl)], flat_upd[t])
    return o


sd = f32(4, 3)
for name, idx, red in [("none_rows", ints([[2], [-4]]), "none"), ("add_dup_rows", ints([[1], [1], [-1]]), "add"),
                       ("mul_elems", ints([[0, 1], [3, -1], [0, 1]]), "mul"), ("max_rows", ints([[0], [0]]), "max"),
                       ("min_elems", ints([[1, 2], [1, 2], [2, 0]]), "min")]:
    upd = f32(*(idx.shape[:-1] + sd.shape[idx.shape[-1]:]))
    attrs = {} if red == "none" else {"reduction": {"string": red}}
    case(g, f"ScatterND_{name}", "ScatterND", [T(sd), T(idx), T(upd)], [T(scatter_nd_ref(sd, idx, upd, red))], attrs=attrs)
sdi = i64(3, 2)
case(g, "ScatterND_i64_add", "ScatterND", [T(sdi), T(ints([[0, 1], [0, 1]])), T(ints([5, 7]))],
     [T(scatter_nd_ref(sdi, ints([[0, 1], [0, 1]]), ints([5, 7]), "add"))], attrs={"reduction": {"string": "add"}},
     rtol=0, atol=0)
case(g, "ScatterND_bool_none", "ScatterND", [T(np.zeros((2, 2), np.bool_)), T(ints([[1, 0]])), T(np.array([True]))],
     [T(np.array([[False, False], [True, False]]))], rtol=0, atol=0)

TORCH_REDUCE = {"add": "sum", "mul": "prod", "max": "amax", "min": "amin"}
se = f32(3, 4)
for name, axis, idx, red in [("none_axis0", 0, ints([[1, 0, 2, -1]]), "none"),
                             ("add_axis1_dup", 1, ints([[0, 0, 3], [-1, 1, 1], [2, 2, 2]]), "add"),
                             ("mul_axis1", 1, ints([[1, 1], [0, 3], [2, -2]]), "mul"),
                             ("max_axis0_dup", 0, ints([[0, 1, 0, 2], [0, 1, 2, 2]]), "max"),
                             ("min_axis_neg1", -1, ints([[3, 3], [0, 1], [1, 1]]), "min")]:
    upd = f32(*idx.shape)
    t = torch.from_numpy(se.copy())
    ti_ = torch.from_numpy(wrap(idx, se.shape[axis]))
    if red == "none":
        ref = t.scatter(axis, ti_, torch.from_numpy(upd)).numpy()
    else:
        ref = t.scatter_reduce(axis, ti_, torch.from_numpy(upd), TORCH_REDUCE[red], include_self=True).numpy()
    attrs = {"axis": {"int": axis}}
    if red != "none":
        attrs["reduction"] = {"string": red}
    case(g, f"ScatterElements_{name}", "ScatterElements", [T(se), T(idx), T(upd)], [T(ref)], attrs=attrs)
sei = i64(2, 3)
case(g, "ScatterElements_i64_i32idx_add", "ScatterElements",
     [T(sei), T(np.array([[2, 2]], np.int32)), T(ints([[4, 9]]))],
     [T(torch.from_numpy(sei.copy()).scatter_add(1, torch.tensor([[2, 2]]), torch.tensor([[4, 9]])).numpy())],
     attrs={"axis": {"int": 1}, "reduction": {"string": "add"}}, rtol=0, atol=0)

# ---------------------------------------------------------------- Einsum (torch.einsum in float64)
g = "einsum"
for name, eq, shapes in [("matmul", "ij,jk->ik", [(3, 4), (4, 5)]), ("implicit_matmul", "ij,jk", [(3, 4), (4, 5)]),
                         ("batched", "bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
                         ("attention_scores", "bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),
                         ("ellipsis_broadcast", "...ij,...jk->...ik", [(2, 1, 3, 4), (1, 3, 4, 5)]),
                         ("ellipsis_implicit", "...ij,...jk", [(2, 3, 4), (1, 4, 5)]),
                         ("ellipsis_middle", "i...j,j->i...", [(3, 2, 4, 5), (5,)]),
                         ("outer", "i,j->ij", [(3,), (4,)]), ("sum_all", "ij->", [(3, 4)]),
                         ("transpose", "ijk->kij", [(2, 3, 4)]), ("implicit_transpose", "ba", [(3, 4)]),
                         ("diagonal", "ii->i", [(4, 4)]), ("trace_implicit", "ii", [(4, 4)]),
                         ("diagonal_batched", "bii,bi->b", [(2, 3, 3), (2, 3)]),
                         ("three_operands", "ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
                         ("upper_case", "Ab,bC->CA", [(3, 4), (4, 2)]),
                         ("spaces", "i j , j k -> i k", [(2, 3), (3, 2)]),
                         ("bilinear", "bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]),
                         ("zero_dim", "ij,jk->ik", [(3, 0), (0, 2)]),
                         ("permuted_output", "bij,bjk->kbi", [(2, 3, 4), (2, 4, 5)]),
                         ("linear_weight_first", "oi,bsi->bso", [(5, 4), (2, 3, 4)])]:
    ops_ = [f32(*s) for s in shapes]
    ref = torch.einsum(eq.replace(" ", ""), *[torch.from_numpy(o.astype(np.float64)) for o in ops_]).numpy()
    case(g, f"Einsum_{name}", "Einsum", [T(o) for o in ops_], [T(ref.astype(np.float32))],
         attrs={"equation": {"string": eq}}, rtol=1e-5, atol=1e-5)
ed = np.arange(6, dtype=np.float64).reshape(2, 3)
case(g, "Einsum_f64", "Einsum", [T(ed), T(ed.T.copy())], [T(np.einsum("ij,jk->ik", ed, ed.T))],
     attrs={"equation": {"string": "ij,jk->ik"}})

# ---------------------------------------------------------------- int32 arithmetic (torch's `.int()`:
# RoBERTa's position ids = cumsum(mask.int()) * mask + padding_idx); own generator, so the cases
# above keep their values
rng32 = np.random.default_rng(32)
for op, fn in int_binary.items():
    a = rng32.integers(-20, 21, size=(2, 3, 4)).astype(np.int32)
    bb = (rng32.integers(1, 6, size=(3, 1)) * np.where(rng32.random((3, 1)) < 0.5, -1, 1)).astype(np.int32)
    case("elementwise", f"{op}_i32", op, [T(a), T(bb)], [T(fn(a, bb).astype(np.int32))], rtol=0, atol=0)
for op, fn in {"Equal": np.equal, "Less": np.less, "Greater": np.greater}.items():
    ai, bi = (rng32.integers(-2, 3, size=s).astype(np.int32) for s in ((2, 1, 3), (4, 1)))
    case("elementwise", f"{op}_i32", op, [T(ai), T(bi)], [T(fn(ai, bi))], rtol=0, atol=0)

# Sign (DeBERTa's relative-position buckets): float with zeros, int64
xs = np.concatenate([rng32.uniform(-2, 2, size=5), [0.0, -0.0]]).astype(np.float32)
case("elementwise", "Sign_f32", "Sign", [T(xs)], [T(torch.sign(torch.from_numpy(xs)).numpy())], rtol=0, atol=0)
xsi = rng32.integers(-3, 4, size=(2, 4)).astype(np.int64)
case("elementwise", "Sign_i64", "Sign", [T(xsi)], [T(np.sign(xsi))], rtol=0, atol=0)

# Celu (nn.CELU), Atan (torch.atan2's export), integer Mod at run time (x % SEQ on token ids) and the
# comparisons of nn.Hardshrink; own generator, so the cases above keep their values
rng_e = np.random.default_rng(41)
xe = rng_e.uniform(-4, 4, size=(3, 5)).astype(np.float32)
for name, alpha in [("Celu_default", None), ("Celu_alpha", 0.7), ("Celu_alpha_large", 2.5)]:
    y = F.celu(torch.from_numpy(xe.astype(np.float64)), alpha=1.0 if alpha is None else alpha).numpy()
    case("activation", name, "Celu", [T(xe)], [T(y.astype(np.float32))],
         attrs={} if alpha is None else {"alpha": {"float": alpha}})
case("activation", "Celu_wide", "Celu", [T(wide)], [T(F.celu(torch.from_numpy(wide.astype(np.float64))).numpy().astype(np.float32))])
xat = np.concatenate([rng_e.uniform(-3, 3, size=9), [0.0, 1e-4, -50.0, 1e6, np.inf, -np.inf]]).astype(np.float32)
case("activation", "Atan_f32", "Atan", [T(xat)], [T(torch.atan(torch.from_numpy(xat.astype(np.float64))).numpy().astype(np.float32))])
for itype, np_t in [("i64", np.int64), ("i32", np.int32)]:
    a = rng_e.integers(-40, 41, size=(2, 3, 4)).astype(np_t)
    bb = (rng_e.integers(1, 9, size=(3, 1)) * np.where(rng_e.random((3, 1)) < 0.5, -1, 1)).astype(np_t)
    ta, tb = torch.from_numpy(a), torch.from_numpy(bb)
    case("elementwise", f"Mod_{itype}", "Mod", [T(a), T(bb)], [T(torch.remainder(ta, tb).numpy())], rtol=0, atol=0)
    case("elementwise", f"Mod_fmod_{itype}", "Mod", [T(a), T(bb)], [T(torch.fmod(ta, tb).numpy())],
         attrs={"fmod": {"int": 1}}, rtol=0, atol=0)
ids = rng_e.integers(0, 1000, size=(2, 7, 3)).astype(np.int64)
case("elementwise", "Mod_i64_token_ids_scalar", "Mod", [T(ids), T(np.int64(16), const=True)],
     [T(torch.remainder(torch.from_numpy(ids), 16).numpy())], rtol=0, atol=0)
extremes = np.array([I64_MIN, I64_MIN, I64_MAX, -7, 7, -7, 0], np.int64)
divisors = np.array([-1, 3, -2, 1, -3, -3, -5], np.int64)
case("elementwise", "Mod_i64_extremes", "Mod", [T(extremes), T(divisors)],
     [T(torch.remainder(torch.from_numpy(extremes), torch.from_numpy(divisors)).numpy())], rtol=0, atol=0)
case("elementwise", "Mod_fmod_i64_extremes", "Mod", [T(extremes), T(divisors)],
     [T(torch.fmod(torch.from_numpy(extremes), torch.from_numpy(divisors)).numpy())],
     attrs={"fmod": {"int": 1}}, rtol=0, atol=0)

# LessOrEqual / GreaterOrEqual on data (nn.Hardshrink / Softshrink): NaN compares false both ways
ca = np.concatenate([rng_e.uniform(-1, 1, size=(2, 3)).round(1), [[np.nan, 0.5, -0.2]]]).astype(np.float32)
cb = np.array([0.5, np.nan, -0.2], np.float32)
ci, cj = rng_e.integers(-2, 3, size=(2, 1, 3)), rng_e.integers(-2, 3, size=(4, 1))
for op, fn in {"LessOrEqual": torch.le, "GreaterOrEqual": torch.ge}.items():
    case("elementwise", f"{op}_f32", op, [T(ca), T(cb)], [T(fn(torch.from_numpy(ca), torch.from_numpy(cb)).numpy())],
         rtol=0, atol=0)
    for itype, np_t in [("i64", np.int64), ("i32", np.int32)]:
        a, b = ci.astype(np_t), cj.astype(np_t)
        case("elementwise", f"{op}_{itype}", op, [T(a), T(b)], [T(fn(torch.from_numpy(a), torch.from_numpy(b)).numpy())],
             rtol=0, atol=0)

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "core_cases.json")
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "w") as f:
    json.dump({"generator": "tests/kernels/gen_core_cases.py", "cases": CASES}, f, separators=(",", ":"))
    f.write("\n")
print(f"wrote {len(CASES)} cases to {out} ({os.path.getsize(out)} bytes)")
