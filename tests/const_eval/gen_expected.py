#!/usr/bin/python3
"""Generates cases.json for const_eval_tests: ONNX nodes with inputs and the outputs numpy computes for them.

Run with Debian's /usr/bin/python3 (numpy 1.24) from this directory:  ./gen_expected.py > cases.json
Where numpy's semantics differ from ONNX's (integer Div truncates, Slice clamps, Range accumulates) the
reference below spells out the ONNX rule with numpy primitives instead of calling our code.
Values travel as strings so int64 above 2^53 and NaN/inf survive JSON exactly.
"""
import json
import math
import sys

import numpy as np

NAMES = {np.float32: "float", np.float16: "float16", np.float64: "double", np.int64: "int64", np.int32: "int32",
         np.int16: "int16", np.int8: "int8", np.uint8: "uint8", np.bool_: "bool"}
ONNX_TYPE = {"float": 1, "uint8": 2, "int8": 3, "int16": 5, "int32": 6, "int64": 7, "bool": 9, "float16": 10,
             "double": 11}
I64_MAX = np.iinfo(np.int64).max
I64_MIN = np.iinfo(np.int64).min

cases = []


def T(arr, dtype=None):
    a = np.asarray(arr, dtype=dtype)
    name = NAMES[a.dtype.type]
    if a.dtype.kind == "f":
        vals = [repr(float(v)) for v in a.ravel()]
    else:
        vals = [str(int(v)) for v in a.ravel()]
    return {"dtype": name, "dims": list(a.shape), "values": vals}


def attr(v):
    if isinstance(v, dict):
        return v
    if isinstance(v, bool) or isinstance(v, int):
        return {"int": int(v)}
    if isinstance(v, float):
        return {"float": v}
    if isinstance(v, str):
        return {"string": v}
    if isinstance(v, np.ndarray):
        return {"tensor": T(v)}
    if isinstance(v, list) and all(isinstance(x, int) for x in v):
        return {"ints": v}
    if isinstance(v, list):
        return {"floats": [float(x) for x in v]}
    raise TypeError(v)


def case(name, op, inputs, outputs=None, error=None, num_outputs=None, **attrs):
    c = {"name": name, "op": op, "attrs": {k: attr(v) for k, v in attrs.items()},
         "inputs": [None if x is None else T(x) for x in inputs]}
    if error:
        c["error"] = error
        c["num_outputs"] = num_outputs or 1
    else:
        outs = outputs if isinstance(outputs, list) else [outputs]
        c["outputs"] = [T(o) for o in outs]
    cases.append(c)


f32, f16, f64, i64, i32, i8, u8, b = np.float32, np.float16, np.float64, np.int64, np.int32, np.int8, np.uint8, np.bool_
rng = np.random.default_rng(0)
A = rng.standard_normal((2, 3)).astype(f32)
B3 = rng.standard_normal((3,)).astype(f32)
BIG = np.array([2**62 + 1, -(2**62) - 3, 2**53 + 1], dtype=i64)


def trunc_div(a, b):
    q = np.floor_divide(a, b)
    fix = (np.mod(a, b) != 0) & ((a < 0) != (b < 0))
    return (q + fix).astype(a.dtype)


# ---------------------------------------------------------------- unary
X = np.array([[-2.5, -0.5, 0.0], [0.5, 1.5, 2.5]], dtype=f32)
P = np.array([0.25, 1.0, 4.0, 9.0], dtype=f32)
case("Neg_f32", "Neg", [X], -X)
case("Neg_i64_big", "Neg", [BIG], -BIG)
case("Abs_f32", "Abs", [X], np.abs(X))
case("Abs_i32", "Abs", [np.array([-3, 0, 7], i32)], np.array([3, 0, 7], i32))
case("Sign_f32", "Sign", [X], np.sign(X))
case("Sign_i64", "Sign", [np.array([-5, 0, 9], i64)], np.sign(np.array([-5, 0, 9], i64)))
case("Relu_f32", "Relu", [X], np.maximum(X, f32(0)))
case("Sqrt_f32", "Sqrt", [P], np.sqrt(P))
case("Sqrt_scalar_f32", "Sqrt", [np.array(64.0, f32)], np.sqrt(np.array(64.0, f32)))
case("Sqrt_f64", "Sqrt", [P.astype(f64)], np.sqrt(P.astype(f64)))
case("Sqrt_f16", "Sqrt", [P.astype(f16)], np.sqrt(P.astype(f16)))
case("Exp_f32", "Exp", [X], np.exp(X))
case("Log_f32", "Log", [P], np.log(P))
case("Log_zero_neg", "Log", [np.array([0.0, -1.0], f32)], np.array([-np.inf, np.nan], f32))
case("Floor_f32", "Floor", [X], np.floor(X))
case("Ceil_f32", "Ceil", [X], np.ceil(X))
case("Reciprocal_f32", "Reciprocal", [P], np.reciprocal(P))
case("Round_half_even", "Round", [X], np.round(X))
case("Sigmoid_f32", "Sigmoid", [X], (1 / (1 + np.exp(-X.astype(f64)))).astype(f32))
case("Tanh_f32", "Tanh", [X], np.tanh(X))
case("Erf_f32", "Erf", [X], np.vectorize(math.erf)(X.astype(f64)).astype(f32))
case("Not_bool", "Not", [np.array([True, False])], np.array([False, True]))
case("Exp_empty", "Exp", [np.zeros((0, 3), f32)], np.zeros((0, 3), f32))
case("Sqrt_int_rejected", "Sqrt", [np.array([4], i64)], error="InvalidArgument")
case("Not_float_rejected", "Not", [np.array([1.0], f32)], error="InvalidArgument")

# ---------------------------------------------------------------- binary arithmetic
case("Add_broadcast_f32", "Add", [A, B3], A + B3)
case("Add_scalar_f32", "Add", [A, np.array(1.5, f32)], A + f32(1.5))
case("Add_i64_big", "Add", [BIG, np.array([5], i64)], BIG + np.int64(5))
case("Add_i64_wraps", "Add", [np.array([I64_MAX], i64), np.array([1], i64)], np.array([I64_MIN], i64))
case("Add_i32_wraps", "Add", [np.array([2**31 - 1], i32), np.array([1], i32)], np.array([-(2**31)], i32))
case("Add_broadcast_both", "Add", [np.arange(3, dtype=i64).reshape(3, 1), np.arange(4, dtype=i64).reshape(1, 4)],
     np.arange(3, dtype=i64).reshape(3, 1) + np.arange(4, dtype=i64).reshape(1, 4))
case("Add_empty_broadcast", "Add", [np.zeros((0, 1), f32), np.ones((1, 4), f32)], np.zeros((0, 4), f32))
case("Sub_f32", "Sub", [A, B3], A - B3)
case("Sub_u8_wraps", "Sub", [np.array([3], u8), np.array([5], u8)], np.array([3], u8) - np.array([5], u8))
case("Mul_f32", "Mul", [A, B3], A * B3)
case("Mul_f16", "Mul", [A.astype(f16), B3.astype(f16)], A.astype(f16) * B3.astype(f16))
case("Mul_i64_big", "Mul", [np.array([2**40 + 3], i64), np.array([2**20 + 1], i64)],
     np.array([2**40 + 3], i64) * np.array([2**20 + 1], i64))
case("Div_f32", "Div", [A, B3], A / B3)
case("Div_f32_by_zero", "Div", [np.array([1.0, -1.0, 0.0], f32), np.array(0.0, f32)],
     np.array([np.inf, -np.inf, np.nan], f32))
DA = np.array([7, -7, 7, -7, 2**62 + 7], i64)
DB = np.array([2, 2, -2, -2, 3], i64)
case("Div_i64_truncates", "Div", [DA, DB], trunc_div(DA, DB))
case("Div_i32_truncates", "Div", [DA[:4].astype(i32), DB[:4].astype(i32)], trunc_div(DA[:4].astype(i32), DB[:4].astype(i32)))
case("Div_i64_min_by_minus1", "Div", [np.array([I64_MIN], i64), np.array([-1], i64)], np.array([I64_MIN], i64))
case("Div_i64_by_zero", "Div", [np.array([1], i64), np.array([0], i64)], error="InvalidArgument")
case("Mod_i64_python", "Mod", [DA, DB], np.mod(DA, DB))
case("Mod_i64_fmod", "Mod", [DA, DB], np.fmod(DA, DB), fmod=1)
case("Mod_f32_fmod", "Mod", [np.array([5.5, -5.5], f32), np.array([2.0, 2.0], f32)],
     np.fmod(np.array([5.5, -5.5], f32), f32(2.0)), fmod=1)
# Floating Mod with fmod=0 is defined from opset 28 on (numpy.mod, special values included); the
# importer refuses it in older models.
MA = np.array([5.5, -5.5, 0.0, -0.0, np.inf, 5.5, -5.5, 5.5, np.nan, 3.0], f32)
MB = np.array([2.0, 2.0, -2.0, 2.0, 2.0, np.inf, np.inf, 0.0, 2.0, -np.inf], f32)
with np.errstate(invalid="ignore", divide="ignore"):
    case("Mod_f32_python_opset28", "Mod", [MA, MB], np.mod(MA, MB))
case("Mod_i64_by_zero", "Mod", [np.array([5], i64), np.array([0], i64)], error="InvalidArgument")
case("Pow_f32", "Pow", [P, np.array(0.5, f32)], np.power(P, f32(0.5)))
case("Pow_f32_int_exp", "Pow", [P, np.array([2], i64)], np.power(P, f32(2)))
case("Pow_i64", "Pow", [np.array([3, -2, 10], i64), np.array([4, 3, 15], i64)],
     np.power(np.array([3, -2, 10], i64), np.array([4, 3, 15], i64)))
case("Pow_i64_float_exp", "Pow", [np.array([4, 9], i64), np.array([0.5], f32)], np.array([2, 3], i64))
case("Add_dtype_mismatch", "Add", [np.array([1], i64), np.array([1.0], f32)], error="InvalidArgument")
case("Add_broadcast_mismatch", "Add", [np.zeros((2, 3), f32), np.zeros((2,), f32)], error="InvalidArgument")

# ---------------------------------------------------------------- variadic
M1 = np.array([[1.0, np.nan, 3.0]], f32)
M2 = np.array([[2.0], [0.5]], f32)
case("Max_variadic_nan", "Max", [M1, M2, np.array(1.5, f32)], np.maximum(np.maximum(M1, M2), f32(1.5)))
case("Min_variadic_nan", "Min", [M1, M2, np.array(1.5, f32)], np.minimum(np.minimum(M1, M2), f32(1.5)))
case("Max_single", "Max", [A], A)
case("Min_i64_big", "Min", [BIG, np.array([2**53], i64)], np.minimum(BIG, np.int64(2**53)))
case("Sum_f32", "Sum", [A, B3, np.array(1.0, f32)], A + B3 + f32(1.0))
case("Mean_f32", "Mean", [A, B3], (A + B3) / f32(2))

# ---------------------------------------------------------------- comparison and logic
CA = np.array([1.0, 2.0, np.nan, 4.0], f32)
CB = np.array([2.0, 2.0, np.nan, 3.0], f32)
for op, fn in [("Equal", np.equal), ("Less", np.less), ("Greater", np.greater), ("LessOrEqual", np.less_equal),
               ("GreaterOrEqual", np.greater_equal)]:
    case(f"{op}_f32", op, [CA, CB], fn(CA, CB))
    case(f"{op}_i64_broadcast", op, [np.arange(4, dtype=i64).reshape(2, 2), np.array([1], i64)],
         fn(np.arange(4, dtype=i64).reshape(2, 2), np.array([1], i64)))
E1 = np.array([2**53, 2**53 + 1, -(2**62)], i64)
E2 = np.array([2**53 + 1, 2**53 + 1, -(2**62) + 1], i64)
case("Equal_i64_above_2p53", "Equal", [E1, E2], np.equal(E1, E2))
case("Less_i64_above_2p53", "Less", [E1, E2], np.less(E1, E2))
case("Equal_bool", "Equal", [np.array([True, False]), np.array([True, True])], np.array([True, False]))
TT = np.array([[True, False]])
FF = np.array([[True], [False]])
case("And_broadcast", "And", [TT, FF], np.logical_and(TT, FF))
case("Or_broadcast", "Or", [TT, FF], np.logical_or(TT, FF))
case("Xor_broadcast", "Xor", [TT, FF], np.logical_xor(TT, FF))
case("And_int_rejected", "And", [np.array([1], i64), np.array([1], i64)], error="InvalidArgument")
COND = np.array([[True], [False]])
case("Where_broadcast", "Where", [COND, A, np.array(-1.0, f32)], np.where(COND, A, f32(-1.0)))
case("Where_i64_big", "Where", [np.array([True, False, True]), BIG, np.zeros(3, i64)],
     np.where([True, False, True], BIG, np.int64(0)))
case("Where_mask_fill", "Where", [np.tril(np.ones((3, 3), b)), np.zeros((3, 3), f32), np.array(-np.inf, f32)],
     np.where(np.tril(np.ones((3, 3), b)), f32(0), f32(-np.inf)))
case("Where_cond_not_bool", "Where", [np.array([1], i64), A, A], error="InvalidArgument")

# ---------------------------------------------------------------- shape ops
X4 = np.arange(24, dtype=f32).reshape(2, 3, 4)
case("Shape", "Shape", [X4], np.array(X4.shape, i64))
case("Shape_start_end", "Shape", [X4], np.array(X4.shape[1:-1], i64), start=1, end=-1)
case("Shape_start_neg", "Shape", [X4], np.array(X4.shape[-1:], i64), start=-1)
case("Shape_clamped", "Shape", [X4], np.array(X4.shape[-10:10], i64), start=-10, end=10)
case("Shape_empty_range", "Shape", [X4], np.zeros(0, i64), start=2, end=1)
case("Shape_scalar", "Shape", [np.array(1.0, f32)], np.zeros(0, i64))
case("Size", "Size", [X4], np.array(X4.size, i64))
case("Size_empty", "Size", [np.zeros((3, 0), f32)], np.array(0, i64))
case("Identity_i64_big", "Identity", [BIG], BIG)
case("Reshape_zero_minus1", "Reshape", [X4, np.array([0, -1], i64)], X4.reshape(2, 12))
case("Reshape_minus1_first", "Reshape", [X4, np.array([-1, 4], i64)], X4.reshape(-1, 4))
case("Reshape_scalar", "Reshape", [np.array([7.0], f32), np.zeros(0, i64)], np.array(7.0, f32))
case("Reshape_allowzero", "Reshape", [np.zeros((0, 3), f32), np.array([3, 0], i64)], np.zeros((3, 0), f32),
     allowzero=1)
case("Reshape_empty_zero_copy", "Reshape", [np.zeros((0, 3), f32), np.array([0, 3, 1], i64)], np.zeros((0, 3, 1), f32))
case("Reshape_count_mismatch", "Reshape", [X4, np.array([5, -1], i64)], error="InvalidArgument")
case("Reshape_two_minus1", "Reshape", [X4, np.array([-1, -1], i64)], error="InvalidArgument")
case("Reshape_allowzero_zero_and_minus1", "Reshape", [X4, np.array([0, -1], i64)], error="InvalidArgument", allowzero=1)
case("Squeeze_axes_input", "Squeeze", [np.zeros((1, 3, 1, 2), f32), np.array([0, -2], i64)], np.zeros((3, 2), f32))
case("Squeeze_all", "Squeeze", [np.arange(3, dtype=i64).reshape(1, 3, 1)], np.arange(3, dtype=i64))
case("Squeeze_axes_attr", "Squeeze", [np.zeros((1, 3), f32)], np.zeros((3,), f32), axes=[0])
case("Squeeze_not_one", "Squeeze", [np.zeros((2, 3), f32), np.array([0], i64)], error="InvalidArgument")
case("Unsqueeze_scalar", "Unsqueeze", [np.array(5, i64), np.array([0], i64)], np.array([5], i64))
case("Unsqueeze_neg_axes", "Unsqueeze", [A, np.array([-1, 0], i64)], np.expand_dims(A, (-1, 0)))
case("Unsqueeze_middle", "Unsqueeze", [A, np.array([1, 3], i64)], np.expand_dims(A, (1, 3)))
case("Unsqueeze_axes_attr", "Unsqueeze", [A], np.expand_dims(A, 0), axes=[0])
case("Unsqueeze_bad_axis", "Unsqueeze", [A, np.array([3], i64)], error="InvalidArgument")
case("Unsqueeze_dup_axis", "Unsqueeze", [A, np.array([0, 0], i64)], error="InvalidArgument")
case("Flatten_default", "Flatten", [X4], X4.reshape(2, 12))
case("Flatten_axis0", "Flatten", [X4], X4.reshape(1, 24), axis=0)
case("Flatten_axis_neg", "Flatten", [X4], X4.reshape(6, 4), axis=-1)
case("Flatten_axis_rank", "Flatten", [X4], X4.reshape(24, 1), axis=3)
case("Transpose_default", "Transpose", [X4], np.transpose(X4))
case("Transpose_perm", "Transpose", [X4], np.transpose(X4, (1, 0, 2)), perm=[1, 0, 2])
case("Transpose_i64_big", "Transpose", [BIG.reshape(3, 1)], BIG.reshape(1, 3))
case("Transpose_bad_perm", "Transpose", [X4], error="InvalidArgument", perm=[0, 0, 1])
case("Expand_bidirectional", "Expand", [np.arange(3, dtype=f32).reshape(3, 1), np.array([2, 1, 4], i64)],
     np.arange(3, dtype=f32).reshape(3, 1) * np.ones((2, 1, 4), f32))
case("Expand_shape_smaller", "Expand", [A, np.array([1], i64)], A)
case("Expand_bool", "Expand", [np.array([True, False]), np.array([2, 2], i64)],
     np.broadcast_to(np.array([True, False]), (2, 2)))
case("Expand_mismatch", "Expand", [A, np.array([4], i64)], error="InvalidArgument")
case("Tile", "Tile", [A, np.array([2, 3], i64)], np.tile(A, (2, 3)))
case("Tile_zero", "Tile", [A, np.array([0, 1], i64)], np.tile(A, (0, 1)))
case("Tile_bad_repeats", "Tile", [A, np.array([2], i64)], error="InvalidArgument")
C1 = np.arange(6, dtype=i64).reshape(2, 3)
C2 = np.arange(4, dtype=i64).reshape(2, 2) + 2**60
case("Concat_axis1", "Concat", [C1, C2], np.concatenate([C1, C2], 1), axis=1)
case("Concat_axis_neg", "Concat", [C1, C2], np.concatenate([C1, C2], -1), axis=-1)
case("Concat_axis0", "Concat", [C1, C1[:1]], np.concatenate([C1, C1[:1]], 0), axis=0)
case("Concat_shape_chain", "Concat", [np.array([2], i64), np.array([-1], i64), np.array([64], i64)],
     np.array([2, -1, 64], i64), axis=0)
case("Concat_empty_input", "Concat", [C1, np.zeros((2, 0), i64)], C1, axis=1)
case("Concat_mismatch", "Concat", [C1, C1.reshape(3, 2)], error="InvalidArgument", axis=0)
case("Concat_bad_axis", "Concat", [C1, C1], error="InvalidArgument", axis=2)
S = np.arange(20, dtype=f32).reshape(2, 10)
case("Split_input", "Split", [S, np.array([3, 7], i64)], np.split(S, [3], axis=1), axis=1)
case("Split_equal", "Split", [S], np.split(S, 5, axis=-1), axis=-1)
case("Split_attr", "Split", [S], np.split(S, [1], axis=0), split=[1, 1])
case("Split_zero_part", "Split", [S, np.array([0, 10], i64)], np.split(S, [0], axis=1), axis=1)
case("Split_bad_sum", "Split", [S, np.array([3, 8], i64)], error="InvalidArgument", num_outputs=2, axis=1)
case("Split_uneven", "Split", [S], error="InvalidArgument", num_outputs=3, axis=1)

# ---------------------------------------------------------------- Slice (ONNX clamping, spelled out)


def onnx_slice(x, starts, ends, axes=None, steps=None):
    axes = list(range(len(starts))) if axes is None else [a + x.ndim if a < 0 else a for a in axes]
    steps = [1] * len(starts) if steps is None else steps
    out = x
    for st, en, ax, sp in zip(starts, ends, axes, steps):
        dim = x.shape[ax]
        st = st + dim if st < 0 else st
        en = en + dim if en < 0 else en
        if sp > 0:
            st, en = min(max(st, 0), dim), min(max(en, 0), dim)
        else:
            st, en = min(max(st, 0), dim - 1), min(max(en, -1), dim - 1)
        idx = np.arange(st, en, sp, dtype=i64) if dim > 0 else np.zeros(0, i64)
        out = np.take(out, idx, axis=ax)
    return out


X5 = np.arange(10, dtype=i64) + 2**60
X6 = np.arange(60, dtype=f32).reshape(3, 4, 5)
case("Slice_basic", "Slice", [X5, np.array([2], i64), np.array([7], i64)], X5[2:7])
case("Slice_int64_max_end", "Slice", [X5, np.array([3], i64), np.array([I64_MAX], i64)], X5[3:])
case("Slice_negative_start", "Slice", [X5, np.array([-3], i64), np.array([I64_MAX], i64)], X5[-3:])
case("Slice_reverse_all", "Slice",
     [X5, np.array([-1], i64), np.array([I64_MIN], i64), np.array([0], i64), np.array([-1], i64)], X5[::-1])
case("Slice_reverse_int64_max_start", "Slice",
     [X5, np.array([I64_MAX], i64), np.array([-I64_MAX], i64), np.array([0], i64), np.array([-3], i64)], X5[::-3])
case("Slice_reverse_start_below", "Slice",
     [X5, np.array([-20], i64), np.array([-30], i64), np.array([0], i64), np.array([-1], i64)],
     onnx_slice(X5, [-20], [-30], [0], [-1]))
case("Slice_step_int64_min", "Slice",
     [X5, np.array([8], i64), np.array([0], i64), np.array([0], i64), np.array([I64_MIN], i64)], X5[8:0:-(2**62)])
case("Slice_step2", "Slice", [X5, np.array([1], i64), np.array([9], i64), np.array([0], i64), np.array([2], i64)],
     X5[1:9:2])
case("Slice_step_huge", "Slice", [X5, np.array([1], i64), np.array([9], i64), np.array([0], i64), np.array([I64_MAX], i64)],
     X5[1:9:I64_MAX])
case("Slice_multi_axes_neg", "Slice",
     [X6, np.array([1, -4], i64), np.array([I64_MAX, -1], i64), np.array([-1, 0], i64), np.array([2, 1], i64)],
     onnx_slice(X6, [1, -4], [I64_MAX, -1], [-1, 0], [2, 1]))
case("Slice_empty", "Slice", [X5, np.array([5], i64), np.array([2], i64)], X5[5:2])
case("Slice_int32_params", "Slice", [X6, np.array([0], i32), np.array([2], i32), np.array([1], i32)], X6[:, 0:2])
case("Slice_empty_dim_reverse", "Slice",
     [np.zeros((0, 2), f32), np.array([-1], i64), np.array([I64_MIN], i64), np.array([0], i64), np.array([-1], i64)],
     np.zeros((0, 2), f32))
case("Slice_causal_mask", "Slice",
     [np.tril(np.ones((1, 1, 8, 8), b)), np.array([0, 0], i64), np.array([5, 5], i64), np.array([2, 3], i64)],
     np.tril(np.ones((1, 1, 8, 8), b))[:, :, :5, :5])
case("Slice_step_zero", "Slice", [X5, np.array([0], i64), np.array([5], i64), np.array([0], i64), np.array([0], i64)],
     error="InvalidArgument")
case("Slice_dup_axes", "Slice", [X6, np.array([0, 0], i64), np.array([1, 1], i64), np.array([1, -2], i64)],
     error="InvalidArgument")

# ---------------------------------------------------------------- Gather, Trilu
case("Gather_scalar_index", "Gather", [np.array([2, 7, 64], i64), np.array(1, i64)], np.array(7, i64), axis=0)
case("Gather_negative_index", "Gather", [X6, np.array([[-1, 0], [1, -2]], i64)],
     np.take(X6, np.array([[-1, 0], [1, -2]]), axis=1), axis=1)
case("Gather_axis_neg_int32", "Gather", [X6, np.array([4, 0], i32)], np.take(X6, [4, 0], axis=-1), axis=-1)
case("Gather_i64_big", "Gather", [BIG, np.array([2, 0], i64)], BIG[[2, 0]])
case("Gather_empty_indices", "Gather", [X6, np.zeros((0,), i64)], np.take(X6, np.zeros(0, i64), axis=0))
case("Gather_out_of_range", "Gather", [X6, np.array([3], i64)], error="InvalidArgument", axis=0)
case("Gather_out_of_range_neg", "Gather", [X6, np.array([-4], i64)], error="InvalidArgument", axis=0)
TR = np.arange(1, 25, dtype=f32).reshape(2, 3, 4)
case("Trilu_upper_default", "Trilu", [TR], np.triu(TR))
case("Trilu_upper_k1", "Trilu", [TR, np.array(1, i64)], np.triu(TR, 1))
case("Trilu_lower_kneg", "Trilu", [TR, np.array(-1, i64)], np.tril(TR, -1), upper=0)
case("Trilu_lower_bool", "Trilu", [np.ones((4, 4), b)], np.tril(np.ones((4, 4), b)), upper=0)
case("Trilu_k_huge", "Trilu", [TR, np.array(I64_MAX, i64)], np.zeros_like(TR))
case("Trilu_rank1", "Trilu", [np.ones(3, f32)], error="InvalidArgument")

# ---------------------------------------------------------------- NonZero (numpy.nonzero: row-major order)
NZ = np.array([[0.0, 1.5, 0.0], [np.nan, 0.0, -2.0]], f32)  # NaN is nonzero
case("NonZero_float_nan", "NonZero", [NZ], np.array(np.nonzero(NZ), i64))
NB = np.array([[[True, False, True]], [[False, False, True]]], b)
case("NonZero_bool_3d", "NonZero", [NB], np.array(np.nonzero(NB), i64))
case("NonZero_none", "NonZero", [np.zeros((2, 3), np.int32)], np.zeros((2, 0), i64))
case("NonZero_int64_1d", "NonZero", [np.array([3, 0, -1, 0, 7], i64)], np.array([[0, 2, 4]], i64))

# ---------------------------------------------------------------- creation and Cast
case("Constant_value", "Constant", [], BIG, value=BIG)
case("Constant_value_float", "Constant", [], np.array(0.125, f32), value_float=0.125)
case("Constant_value_floats", "Constant", [], np.array([1.5, -2.0], f32), value_floats=[1.5, -2.0])
case("Constant_value_int", "Constant", [], np.array(2**62 + 5, i64), value_int=2**62 + 5)
case("Constant_value_ints", "Constant", [], np.array([-1, 2**55 + 1], i64), value_ints=[-1, 2**55 + 1])
case("Constant_two_values", "Constant", [], error="InvalidArgument", value_int=1, value_float=1.0)
case("ConstantOfShape_default", "ConstantOfShape", [np.array([2, 3], i64)], np.zeros((2, 3), f32))
case("ConstantOfShape_i64", "ConstantOfShape", [np.array([3], i64)], np.full(3, 2**60 + 1, i64),
     value=np.array([2**60 + 1], i64))
case("ConstantOfShape_bool_scalar", "ConstantOfShape", [np.zeros(0, i64)], np.array(True), value=np.array([True]))
case("ConstantOfShape_empty", "ConstantOfShape", [np.array([0, 4], i64)], np.zeros((0, 4), f32))
case("ConstantOfShape_negative", "ConstantOfShape", [np.array([-1], i64)], error="InvalidArgument")


def range_acc(start, limit, delta, dtype):
    # ONNX Range's function body: out[0] = start, out[i] = out[i-1] + delta, count = max(ceil((limit-start)/delta), 0).
    start, limit, delta = dtype(start), dtype(limit), dtype(delta)
    n = max(int(math.ceil(float(dtype(limit - start)) / float(delta))), 0)
    out, v = [], start
    for _ in range(n):
        out.append(v)
        v = dtype(v + delta)
    return np.array(out, dtype)


def sc(v, t):
    return np.array(v, t)


case("Range_i64", "Range", [sc(0, i64), sc(7, i64), sc(1, i64)], np.arange(0, 7, 1, dtype=i64))
case("Range_i64_step3", "Range", [sc(1, i64), sc(11, i64), sc(3, i64)], np.arange(1, 11, 3, dtype=i64))
case("Range_i64_negative_delta", "Range", [sc(10, i64), sc(-3, i64), sc(-4, i64)], np.arange(10, -3, -4, dtype=i64))
case("Range_i64_empty", "Range", [sc(5, i64), sc(1, i64), sc(1, i64)], np.zeros(0, i64))
case("Range_i64_big", "Range", [sc(2**60, i64), sc(2**60 + 5, i64), sc(2, i64)],
     np.array([2**60, 2**60 + 2, 2**60 + 4], i64))
case("Range_i64_extremes", "Range", [sc(I64_MIN, i64), sc(I64_MAX, i64), sc(2**62, i64)],
     np.array([I64_MIN, I64_MIN + 2**62, 0, 2**62], i64))
case("Range_i32", "Range", [sc(-2, i32), sc(3, i32), sc(2, i32)], np.arange(-2, 3, 2, dtype=i32))
case("Range_f32", "Range", [sc(0.5, f32), sc(3.0, f32), sc(0.5, f32)], range_acc(0.5, 3.0, 0.5, f32))
case("Range_f32_inexact", "Range", [sc(0.1, f32), sc(1.0, f32), sc(0.3, f32)], range_acc(0.1, 1.0, 0.3, f32))
case("Range_f64_negative", "Range", [sc(1.0, f64), sc(-1.0, f64), sc(-0.25, f64)], range_acc(1.0, -1.0, -0.25, f64))
case("Range_zero_delta", "Range", [sc(0, i64), sc(5, i64), sc(0, i64)], error="InvalidArgument")
case("Range_too_long", "Range", [sc(0, i64), sc(I64_MAX, i64), sc(1, i64)], error="OutOfRange")
CF = np.array([-2.7, -0.5, 0.0, 0.5, 2.7, 300.0], f32)
case("Cast_f32_to_i64_truncates", "Cast", [CF], CF.astype(i64), to=ONNX_TYPE["int64"])
case("Cast_f32_to_i32", "Cast", [CF], CF.astype(i32), to=ONNX_TYPE["int32"])
case("Cast_f32_to_bool", "Cast", [np.array([0.0, -0.0, 0.1, np.nan, -3.0], f32)],
     np.array([0.0, -0.0, 0.1, np.nan, -3.0], f32).astype(b), to=ONNX_TYPE["bool"])
case("Cast_f32_to_f16", "Cast", [A], A.astype(f16), to=ONNX_TYPE["float16"])
case("Cast_f16_to_f32", "Cast", [A.astype(f16)], A.astype(f16).astype(f32), to=ONNX_TYPE["float"])
case("Cast_f32_to_f64", "Cast", [A], A.astype(f64), to=ONNX_TYPE["double"])
case("Cast_f64_to_f32", "Cast", [np.array([0.1, 1e300, -1e-300], f64)], np.array([0.1, 1e300, -1e-300], f64).astype(f32),
     to=ONNX_TYPE["float"])
case("Cast_i64_to_f32_big", "Cast", [BIG], BIG.astype(f32), to=ONNX_TYPE["float"])
case("Cast_i64_to_f64_big", "Cast", [BIG], BIG.astype(f64), to=ONNX_TYPE["double"])
case("Cast_i64_to_i32_wraps", "Cast", [BIG], BIG.astype(i32), to=ONNX_TYPE["int32"])
case("Cast_i64_to_u8_wraps", "Cast", [np.array([-1, 256, 300], i64)], np.array([-1, 256, 300], i64).astype(u8),
     to=ONNX_TYPE["uint8"])
case("Cast_i64_to_bool", "Cast", [np.array([0, 2**62, -1], i64)], np.array([False, True, True]), to=ONNX_TYPE["bool"])
case("Cast_bool_to_f32", "Cast", [np.array([True, False])], np.array([1.0, 0.0], f32), to=ONNX_TYPE["float"])
case("Cast_i8_to_i64", "Cast", [np.array([-128, 127], i8)], np.array([-128, 127], i64), to=ONNX_TYPE["int64"])
case("Cast_f32_to_u8", "Cast", [np.array([0.0, 254.9], f32)], np.array([0, 254], u8), to=ONNX_TYPE["uint8"])
case("Cast_f32_nan_to_i64", "Cast", [np.array([np.nan], f32)], error="OutOfRange", to=ONNX_TYPE["int64"])
case("Cast_f32_overflow_i32", "Cast", [np.array([3e9], f32)], error="OutOfRange", to=ONNX_TYPE["int32"])
case("Cast_unsupported_type", "Cast", [A], error="Unimplemented", to=8)  # STRING
case("CastLike", "CastLike", [CF, np.zeros(0, i32)], CF.astype(i32))

# ---------------------------------------------------------------- reductions
R = rng.integers(-5, 6, size=(2, 3, 4)).astype(f32)
RI = rng.integers(-5, 6, size=(2, 3, 4)).astype(i64)
for op, fn in [("ReduceSum", np.sum), ("ReduceProd", np.prod), ("ReduceMax", np.max), ("ReduceMin", np.min),
               ("ReduceMean", np.mean)]:
    axes_kw = {} if op == "ReduceSum" else {"axes": [1, -1]}
    inputs = [R, np.array([1, -1], i64)] if op == "ReduceSum" else [R]
    case(f"{op}_axes_keepdims", op, inputs, fn(R, axis=(1, -1), keepdims=True).astype(f32), **axes_kw)
    case(f"{op}_all_nokeep", op, [R], np.array(fn(R)).astype(f32), keepdims=0)
    kw = {"axes": [0]} if op != "ReduceSum" else {}
    inputs_i = [RI, np.array([0], i64)] if op == "ReduceSum" else [RI]
    ref = fn(RI, axis=0, keepdims=False)
    ref = np.trunc(ref).astype(i64) if op == "ReduceMean" else ref.astype(i64)
    case(f"{op}_i64_axis0", op, inputs_i, ref, keepdims=0, **kw)
case("ReduceSum_i64_big", "ReduceSum", [np.array([[2**62, 2**53 + 1], [3, -(2**62)]], i64), np.array([0], i64)],
     np.array([2**62 + 3, 2**53 + 1 - 2**62], i64), keepdims=0)
case("ReduceSum_noop_empty_axes", "ReduceSum", [R, np.zeros(0, i64)], R, noop_with_empty_axes=1)
case("ReduceSum_empty_axes_all", "ReduceSum", [R, np.zeros(0, i64)], np.sum(R, keepdims=True).astype(f32))
case("ReduceSum_axes_attr_opset11", "ReduceSum", [R], np.sum(R, axis=2, keepdims=True).astype(f32), axes=[2])
case("ReduceSum_empty_dim", "ReduceSum", [np.zeros((0, 3), f32), np.array([0], i64)], np.zeros((1, 3), f32))
case("ReduceProd_empty_dim", "ReduceProd", [np.zeros((0, 3), f32)], np.ones((3,), f32), axes=[0], keepdims=0)
case("ReduceMax_nan", "ReduceMax", [np.array([[1.0, np.nan], [2.0, 3.0]], f32)], np.array([np.nan, 3.0], f32),
     axes=[1], keepdims=0)
case("ReduceMean_i32", "ReduceMean", [np.array([[1, 2], [-3, -4]], i32)], np.array([1, -3], i32), axes=[1], keepdims=0)
case("ReduceSum_bad_axis", "ReduceSum", [R, np.array([3], i64)], error="InvalidArgument")
case("ReduceMax_dup_axes", "ReduceMax", [R], error="InvalidArgument", axes=[1, -2])

# ---------------------------------------------------------------- opset 18+ forms
# Opset 18 moved the axes of ReduceMean/Max/Min/Prod to an optional input (an empty one reduces all
# axes, or none under noop_with_empty_axes) and gave Split num_outputs: parts of ceil(dim / n), the
# last one smaller.
for op, fn in [("ReduceProd", np.prod), ("ReduceMax", np.max), ("ReduceMin", np.min), ("ReduceMean", np.mean)]:
    case(f"{op}_axes_input_opset18", op, [R, np.array([1, -1], i64)], fn(R, axis=(1, -1), keepdims=True).astype(f32))
    case(f"{op}_empty_axes_input_all_opset18", op, [R, np.zeros(0, i64)], np.array(fn(R)).astype(f32), keepdims=0)
    case(f"{op}_noop_empty_axes_opset18", op, [R, np.zeros(0, i64)], R, noop_with_empty_axes=1)
    case(f"{op}_noop_no_axes_opset18", op, [R], R, noop_with_empty_axes=1)
case("ReduceMax_i64_axes_input_opset18", "ReduceMax", [RI, np.array([0], i64)], np.max(RI, axis=0), keepdims=0)
case("ReduceMin_bad_axis_input_opset18", "ReduceMin", [R, np.array([-4], i64)], error="InvalidArgument")
S18 = np.arange(14, dtype=f32).reshape(2, 7)


def split_num_outputs(name, x, n_attr, n_out, outputs=None, error=None, **attrs):
    """A Split with the num_outputs attribute (case()'s own num_outputs counts an error case's outputs)."""
    case(name, "Split", [x], outputs, error=error, num_outputs=n_out, **attrs)
    cases[-1]["attrs"]["num_outputs"] = attr(n_attr)


split_num_outputs("Split_num_outputs_uneven_opset18", S18, 3, 3, np.split(S18, [3, 6], axis=1), axis=1)
split_num_outputs("Split_num_outputs_even_opset18", S18.T, 7, 7, np.split(S18.T, 7, axis=0), axis=0)
split_num_outputs("Split_num_outputs_mismatch_opset18", S18, 2, 3, error="InvalidArgument", axis=1)

# ---------------------------------------------------------------- Cos, Sin, IsNaN, IsInf, CumSum
# Rotary tables, SDPA NaN masks and position ids that exports compute from constants.
ANG = np.array([[0.0, 0.5, -1.25], [3.0, -7.5, 100.0]], dtype=f32)
case("Cos", "Cos", [ANG], np.cos(ANG.astype(f64)).astype(f32))
case("Sin", "Sin", [ANG], np.sin(ANG.astype(f64)).astype(f32))
case("Sin_f64", "Sin", [ANG.astype(f64)], np.sin(ANG.astype(f64)))
case("Cos_int_rejected", "Cos", [np.array([1, 2], i64)], error="InvalidArgument")
SPECIAL = np.array([np.nan, np.inf, -np.inf, 0.0, -1.5, 3.0e38], dtype=f32)
case("IsNaN", "IsNaN", [SPECIAL], np.isnan(SPECIAL))
case("IsNaN_f16", "IsNaN", [SPECIAL[:5].astype(f16)], np.isnan(SPECIAL[:5]))
case("IsInf", "IsInf", [SPECIAL], np.isinf(SPECIAL))
case("IsInf_positive_only", "IsInf", [SPECIAL], np.isposinf(SPECIAL), detect_negative=0)
case("IsInf_negative_only_f64", "IsInf", [SPECIAL.astype(f64)], np.isneginf(SPECIAL), detect_positive=0)
case("IsInf_neither", "IsInf", [SPECIAL], np.zeros(6, b), detect_positive=0, detect_negative=0)
case("IsNaN_int_rejected", "IsNaN", [np.array([1], i64)], error="InvalidArgument")
MASK = np.array([[1, 1, 0, 1], [0, 1, 1, 1]], dtype=i64)
CS = np.arange(24, dtype=f32).reshape(2, 3, 4) * 0.5 - 3.0


def cumsum_ref(x, axis, exclusive=0, reverse=0):
    y = np.flip(x, axis) if reverse else x
    c = np.cumsum(y, axis=axis, dtype=y.dtype)
    if exclusive:
        c = c - y
    return np.ascontiguousarray(np.flip(c, axis) if reverse else c)


case("CumSum_position_ids", "CumSum", [MASK, np.array(1, i64)], cumsum_ref(MASK, 1))
case("CumSum_axis_int32_neg", "CumSum", [CS, np.array([-2], i32)], cumsum_ref(CS, 1))
case("CumSum_exclusive", "CumSum", [CS, np.array(2, i64)], cumsum_ref(CS, 2, exclusive=1), exclusive=1)
case("CumSum_reverse", "CumSum", [CS, np.array(0, i64)], cumsum_ref(CS, 0, reverse=1), reverse=1)
case("CumSum_exclusive_reverse_i32", "CumSum", [MASK.astype(i32), np.array(1, i64)],
     cumsum_ref(MASK.astype(i32), 1, exclusive=1, reverse=1), exclusive=1, reverse=1)
case("CumSum_i64_wraps", "CumSum", [np.array([I64_MAX, 1], i64), np.array(0, i64)],
     np.array([I64_MAX, I64_MIN], i64))
case("CumSum_bad_axis", "CumSum", [CS, np.array(3, i64)], error="InvalidArgument")
case("CumSum_axis_not_scalar", "CumSum", [CS, np.array([0, 1], i64)], error="InvalidArgument")
case("CumSum_bool_rejected", "CumSum", [np.ones(3, b), np.array(0, i64)], error="InvalidArgument")

# ---------------------------------------------------------------- GatherElements, GatherND, ScatterElements, ScatterND
# References: numpy's take_along_axis / advanced indexing, and the spec's scatter loops (defs.cc).
GE = np.arange(12, dtype=i64).reshape(3, 4) * 3 - 7
case("GatherElements_axis1_neg", "GatherElements", [GE, np.array([[0, -1], [3, 3], [-4, 1]], i64)],
     np.take_along_axis(GE, np.array([[0, 3], [3, 3], [0, 1]]), 1), axis=1)
case("GatherElements_axis0_i32_f32", "GatherElements", [GE.astype(f32), np.array([[2, 0, 1, -1]], i32)],
     np.take_along_axis(GE.astype(f32), np.array([[2, 0, 1, 2]]), 0))
case("GatherElements_out_of_range", "GatherElements", [GE, np.array([[0], [4], [1]], i64)], error="InvalidArgument",
     axis=1)
case("GatherND_full_tuples", "GatherND", [GE, np.array([[2, 3], [-1, 0], [0, -4]], i64)], GE[[2, 2, 0], [3, 0, 0]])
case("GatherND_rows", "GatherND", [GE, np.array([[[1]], [[-3]]], i64)], GE[np.array([[1], [0]])])
GN3 = np.arange(24, dtype=f32).reshape(2, 3, 4)
case("GatherND_batch_dims1", "GatherND", [GN3, np.array([[1, 2], [-1, 0]], i64)],
     np.stack([GN3[0, 1, 2], GN3[1, 2, 0]]), batch_dims=1)
case("GatherND_out_of_range", "GatherND", [GE, np.array([[3, 0]], i64)], error="InvalidArgument")
case("GatherND_tuple_too_long", "GatherND", [GE, np.array([[0, 0, 0]], i64)], error="InvalidArgument")


def scatter_nd(data, idx, upd, f=None):
    out = data.copy()
    k = idx.shape[-1]
    flat = idx.reshape(-1, k)
    u = upd.reshape((flat.shape[0],) + data.shape[k:])
    for t, tup in enumerate(flat):
        pos = tuple(int(v) % data.shape[j] for j, v in enumerate(tup))
        out[pos] = u[t] if f is None else f(out[pos], u[t])
    return out


def scatter_elements(data, idx, upd, axis, f=None):
    out = data.copy()
    for pos in np.ndindex(*idx.shape):
        tgt = list(pos)
        tgt[axis] = int(idx[pos]) % data.shape[axis]
        tgt = tuple(tgt)
        out[tgt] = upd[pos] if f is None else f(out[tgt], upd[pos])
    return out


SI = np.array([[1], [-1], [1]], i64)
SU = np.arange(12, dtype=i64).reshape(3, 4) + 100
case("ScatterND_none", "ScatterND", [GE, SI[:2], SU[:2]], scatter_nd(GE, SI[:2], SU[:2]))
for red, f in [("add", np.add), ("mul", np.multiply), ("max", np.maximum), ("min", np.minimum)]:
    case(f"ScatterND_{red}_dups", "ScatterND", [GE, SI, SU], scatter_nd(GE, SI, SU, f), reduction=red)
    case(f"ScatterElements_{red}_dups_f32", "ScatterElements",
         [GE.astype(f32), np.array([[0, 0], [2, -1], [1, 1]], i64), np.array([[1.5, -2], [3, 0.25], [-1, 4]], f32)],
         scatter_elements(GE.astype(f32), np.array([[0, 0], [2, -1], [1, 1]]),
                          np.array([[1.5, -2], [3, 0.25], [-1, 4]], f32), 1, f), axis=1, reduction=red)
case("ScatterND_i64_add_wraps", "ScatterND", [np.array([I64_MAX, 0], i64), np.array([[0]], i64), np.array([1], i64)],
     np.array([I64_MIN, 0], i64), reduction="add")
case("ScatterElements_none_axis0_i32_idx", "ScatterElements",
     [GE, np.array([[2, -3, 0, 1]], i32), np.array([[9, 8, 7, 6]], i64)],
     scatter_elements(GE, np.array([[2, -3, 0, 1]]), np.array([[9, 8, 7, 6]]), 0))
case("ScatterElements_out_of_range", "ScatterElements",
     [GE, np.array([[5]], i64), np.array([[1]], i64)], error="InvalidArgument", axis=1)
case("ScatterND_bad_reduction", "ScatterND", [GE, SI, SU], error="InvalidArgument", reduction="avg")
case("ScatterND_out_of_range", "ScatterND", [GE, np.array([[-4]], i64), SU[:1]], error="InvalidArgument")

# ---------------------------------------------------------------- Einsum (numpy.einsum)
POS = np.arange(6, dtype=f32)
INV = (1.0 / (10000 ** (np.arange(0, 4, 2, dtype=f32) / 4))).astype(f32)
case("Einsum_rotary_outer", "Einsum", [POS, INV], np.einsum("i,j->ij", POS, INV), equation="i,j->ij")
EA = np.arange(12, dtype=f32).reshape(3, 4) * 0.25 - 1
EB = np.arange(20, dtype=f32).reshape(4, 5) * 0.5 - 2
case("Einsum_implicit_matmul", "Einsum", [EA, EB], np.einsum("ij,jk", EA, EB), equation="ij,jk")
case("Einsum_trace_i64", "Einsum", [np.arange(9, dtype=i64).reshape(3, 3)], np.array(12, i64), equation="ii")
case("Einsum_ellipsis_broadcast", "Einsum", [np.arange(24, dtype=f64).reshape(2, 1, 3, 4), EB.astype(f64)[None]],
     np.einsum("...ij,...jk->...ik", np.arange(24, dtype=f64).reshape(2, 1, 3, 4), EB.astype(f64)[None]),
     equation="...ij,...jk->...ik")
case("Einsum_i64_wraps", "Einsum", [np.array([I64_MAX, 1], i64), np.array([2, 1], i64)], np.array(-1, i64),
     equation="i,i->")
case("Einsum_bad_equation", "Einsum", [EA, EB], error="InvalidArgument", equation="ij,jk->iz")
case("Einsum_size_mismatch", "Einsum", [EA, EA], error="InvalidArgument", equation="ij,jk->ik")

json.dump({"generator": "tests/const_eval/gen_expected.py", "numpy": np.__version__, "cases": cases}, sys.stdout,
          indent=0)
sys.stdout.write("\n")
