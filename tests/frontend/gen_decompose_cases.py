#!/opt/torchenv/bin/python
"""Writes data/decompose_cases.json for decompose_ops_test: PRelu, DepthToSpace, SpaceToDepth,
Pad (reflect, edge, wrap), DFT and Col2Im models with PyTorch's (torch 2.15) forward values and
gradients, which dscompile computes through its import-time decompositions
(frontend/decompose_ops.h, decompose_pad.h, decompose_dft.h).

    /opt/torchenv/bin/python tests/frontend/gen_decompose_cases.py

Each case: an ONNX text model whose float initializers are the inputs, a weight R per output (the
test differentiates loss = sum(y * R)), and the expected output and gradient of every initializer.
References: torch.prelu and F.pixel_shuffle / F.pixel_unshuffle with autograd, in float64 from
float32 data; DepthToSpace DCR and SpaceToDepth (no torch op) as the ONNX spec's reshape/transpose in
torch, checked here against onnx.reference. Pad: F.pad's reflect/replicate/circular where torch
has the case; otherwise (pads past the edge, negative pads, a size-1 axis) index_select along each
axis by numpy.pad's own map of the source positions (np.pad(arange(n), mode)), checked against
onnx.reference. DFT as torch.fft.fft/ifft/rfft/irfft on the complex view of the input (the
gradients checked against finite differences), and against onnx.reference.
Col2Im as F.fold (2-D; a 1-D Col2Im is F.fold over a (1, W) image), checked against
onnx.reference as well.
"""
import json
import os

import numpy as np
import onnx
import onnx.reference
import torch
import torch.nn.functional as F

rng = np.random.default_rng(7)
CASES = []


def text_tensor(name, a):
    vals = ", ".join(repr(float(v)) for v in a.reshape(-1))
    return "float[%s] %s = {%s}" % (",".join(str(d) for d in a.shape), name, vals)


def text_ints(name, v):
    return "int64[%d] %s = {%s}" % (len(v), name, ", ".join(str(x) for x in v))


def add(name, opset, node, inits, fn, out_shape, check_onnx=False, consts=None, pre=()):
    """inits: {name: float32 array}; fn(*torch tensors) -> y; consts: {name: int list}, int64
    initializers; pre: node lines before y's."""
    ts = {k: torch.tensor(v.astype(np.float64), requires_grad=True) for k, v in inits.items()}
    y = fn(*ts.values())
    r = rng.uniform(-1, 1, size=y.shape).astype(np.float32)
    (y * torch.from_numpy(r.astype(np.float64))).sum().backward()
    body = node if "\n" in node else "y = " + node  # several lines: the whole body, which writes y
    text = ("<ir_version: %d, opset_import: [\"\" : %d]>\ng () => (float[%s] y) <%s> {\n%s  %s\n}"
            % (10 if opset >= 20 else 8, opset, ",".join(str(d) for d in out_shape),
               ", ".join([text_tensor(k, v) for k, v in inits.items()] +
                         [text_ints(k, v) for k, v in (consts or {}).items()]),
               "".join("  %s\n" % p for p in pre), body))
    if check_onnx:
        m = onnx.parser.parse_model(text)
        (ref,) = onnx.reference.ReferenceEvaluator(m).run(None, {})
        assert np.allclose(ref, y.detach().numpy(), rtol=1e-6, atol=1e-7), name
    CASES.append({"name": name, "model": text, "R": r.reshape(-1).tolist(),
                  "y": y.detach().numpy().astype(np.float32).reshape(-1).tolist(),
                  "grads": {k: t.grad.numpy().astype(np.float32).reshape(-1).tolist() for k, t in ts.items()}})


def with_zeros(a):
    a = a.copy()
    a.reshape(-1)[::5] = 0.0  # torch: dX = slope * dY and dSlope = 0 at x == 0
    return a


x = with_zeros(rng.uniform(-2, 2, size=(2, 3, 2, 2)).astype(np.float32))
s = rng.uniform(0.05, 0.5, size=(3, 1, 1)).astype(np.float32)
add("prelu_per_channel", 20, "PRelu(x, s)", {"x": x, "s": s},
    lambda x, s: torch.prelu(x, s.reshape(-1)), x.shape)
x = with_zeros(rng.uniform(-2, 2, size=(4, 5)).astype(np.float32))
add("prelu_single", 17, "PRelu(x, s)", {"x": x, "s": np.array([0.25], np.float32)},
    lambda x, s: torch.prelu(x, s), x.shape)
# nn.PReLU(5) on (N, 5): the exporter's slope (1, 5); torch.prelu reads the weight along dim 1.
x = with_zeros(rng.uniform(-2, 2, size=(3, 5)).astype(np.float32))
add("prelu_row_slope", 13, "PRelu(x, s)", {"x": x, "s": rng.uniform(-0.5, 0.5, size=(1, 5)).astype(np.float32)},
    lambda x, s: torch.prelu(x, s.reshape(-1)), x.shape)

x = rng.uniform(-1, 1, size=(2, 8, 2, 3)).astype(np.float32)
add("depth_to_space_crd", 20, 'DepthToSpace <blocksize = 2, mode = "CRD"> (x)', {"x": x},
    lambda x: F.pixel_shuffle(x, 2), (2, 2, 4, 6), check_onnx=True)


def dcr(x, b):
    n, c, h, w = x.shape
    return x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2).reshape(n, c // (b * b), h * b, w * b)


def s2d(x, b):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4).reshape(n, c * b * b, h // b, w // b)


x = rng.uniform(-1, 1, size=(1, 18, 2, 3)).astype(np.float32)
add("depth_to_space_dcr", 13, "DepthToSpace <blocksize = 3> (x)", {"x": x}, lambda x: dcr(x, 3), (1, 2, 6, 9),
    check_onnx=True)
x = rng.uniform(-1, 1, size=(2, 3, 4, 6)).astype(np.float32)
add("space_to_depth", 17, "SpaceToDepth <blocksize = 2> (x)", {"x": x}, lambda x: s2d(x, 2), (2, 12, 2, 3),
    check_onnx=True)
# nn.PixelUnshuffle is not SpaceToDepth (channel-major blocks): exporters write it as Reshape/Transpose.
assert not torch.equal(F.pixel_unshuffle(torch.from_numpy(x), 2), s2d(torch.from_numpy(x), 2))

# ---- Pad in modes reflect / edge / wrap ----
NP_MODE = {"reflect": "reflect", "edge": "edge", "wrap": "wrap"}


def np_pad_fn(mode, pads):
    """torch function padding like numpy.pad (ONNX's definition), negative pads cropping first."""
    def fn(x):
        r = x.dim()
        for a in range(r):
            b, e = pads[a], pads[a + r]
            n = x.shape[a]
            src = np.arange(n)
            src = src[max(-b, 0):n - max(-e, 0)]
            src = np.pad(src, (max(b, 0), max(e, 0)), mode=NP_MODE[mode])
            x = torch.index_select(x, a, torch.from_numpy(src.astype(np.int64)))
        return x
    return fn


def add_pad(name, opset, mode, shape, pads, fn=None, axes=None, computed=False):
    x = rng.uniform(-1, 1, size=shape).astype(np.float32)
    full = list(pads)
    if axes is not None:  # pads for the listed axes only
        full = [0] * (2 * len(shape))
        k = len(axes)
        for i, a in enumerate(axes):
            full[a % len(shape)] = pads[i]
            full[a % len(shape) + len(shape)] = pads[i + k]
    ref = np_pad_fn(mode, full)
    out_shape = ref(torch.from_numpy(x)).shape
    if fn is not None:  # torch's own padding agrees with numpy's map
        assert torch.equal(fn(torch.from_numpy(x)), ref(torch.from_numpy(x))), name
    if axes is not None:
        node = 'Pad <mode = "%s"> (x, pads, , axes)' % mode
    elif computed:  # pads computed in the graph (as the legacy exporter's chain): found only at folding
        node = 'twice = Add (pads, pads)\n  half = Div (twice, two)\n  y = Pad <mode = "%s"> (x, half)' % mode
    else:
        node = 'Pad <mode = "%s"> (x, pads)' % mode
    consts = {"pads": list(pads)}
    if computed:
        consts["two"] = [2]
    if axes is not None:
        consts["axes"] = list(axes)
    # onnx.reference pads with numpy, which refuses negative pads
    add(name, opset, node, {"x": x}, fn or ref, out_shape, check_onnx=min(pads) >= 0, consts=consts)


add_pad("pad_reflect_conv1d", 20, "reflect", (2, 3, 5), [0, 0, 2, 0, 0, 1],
        fn=lambda x: F.pad(x, (2, 1), mode="reflect"))
add_pad("pad_edge_2d", 18, "edge", (1, 2, 4, 3), [0, 0, 1, 2, 0, 0, 3, 1],
        fn=lambda x: F.pad(x, (2, 1, 1, 3), mode="replicate"))
add_pad("pad_wrap_axes", 19, "wrap", (2, 3, 4), [1, 2], axes=[-1],
        fn=lambda x: F.pad(x, (1, 2), mode="circular"))
add_pad("pad_reflect_3d", 20, "reflect", (1, 1, 3, 4, 3), [0, 0, 1, 2, 1, 0, 0, 2, 1, 2],
        fn=lambda x: F.pad(x, (1, 2, 2, 1, 1, 2), mode="reflect"))
# Past torch's limits, as ONNX (numpy) defines them: reflection repeating past the far edge, edge and
# reflect on a size-1 axis, negative pads cropping (first, as torch), wrap around more than once, pads
# computed in the graph.
add_pad("pad_reflect_past_edge", 13, "reflect", (2, 3), [0, 7, 0, 5])
add_pad("pad_size1_axis", 20, "reflect", (1, 3), [2, 0, 1, 1])
add_pad("pad_edge_negative", 18, "edge", (1, 3, 5), [0, -1, 2, 0, 1, -2], fn=lambda x: F.pad(x, (2, -2, -1, 1), mode="replicate"))
add_pad("pad_wrap_negative", 19, "wrap", (2, 6), [0, -2, 0, 3], fn=lambda x: F.pad(x, (-2, 3), mode="circular"))
add_pad("pad_wrap_twice", 19, "wrap", (2, 3), [0, 4, 1, 7])
add_pad("pad_reflect_computed", 17, "reflect", (2, 3, 4), [0, 0, 2, 0, 1, 3], computed=True,
        fn=lambda x: F.pad(x, (2, 3, 0, 1), mode="reflect"))
add_pad("pad_wrap_computed_negative", 19, "wrap", (2, 6), [1, -2, 0, 3], computed=True)

# DFT: x's last dim holds (real[, imaginary]); the references transform its complex view.
def cplx(x):
    return torch.view_as_complex(x) if x.shape[-1] == 2 else x[..., 0]


def fft_case(name, opset, node, x, fn, pre=()):
    def ref(x):
        z = fn(cplx(x))
        return torch.view_as_real(z) if z.is_complex() else z[..., None]
    t = torch.tensor(x.astype(np.float64), requires_grad=True)
    assert torch.autograd.gradcheck(ref, (t,)), name  # torch's FFT gradients against finite differences
    add(name, opset, node, {"x": x}, ref, tuple(ref(t).shape), check_onnx=True, pre=pre)


def signal(*shape):
    return rng.uniform(-1, 1, size=shape).astype(np.float32)


fft_case("dft_rfft", 20, "DFT <onesided = 1> (x)", signal(2, 6, 1), lambda z: torch.fft.rfft(z, dim=1))
fft_case("dft_complex_inner_axis", 20, 'DFT (x, "", a)', signal(2, 5, 3, 2), lambda z: torch.fft.fft(z, dim=1),
         pre=["a = Constant <value_int = 1> ()"])
fft_case("dft_inverse_padded_opset17", 17, "DFT <axis = 1, inverse = 1> (x, n)", signal(3, 5, 2),
         lambda z: torch.fft.ifft(z, n=8, dim=1), pre=["n = Constant <value = int64 {8}> ()"])
fft_case("dft_real_truncated_negative_axis", 20, "DFT (x, n, a)", signal(2, 6, 3, 1),
         lambda z: torch.fft.fft(z, n=4, dim=1),
         pre=["n = Constant <value = int64 {4}> ()", "a = Constant <value = int64 {-3}> ()"])
fft_case("dft_irfft_odd_length", 20, "DFT <inverse = 1, onesided = 1> (x, n)", signal(2, 5, 2),
         lambda z: torch.fft.irfft(z, n=7, dim=1), pre=["n = Constant <value = int32 {7}> ()"])
fft_case("dft_irfft_default_length", 20, "DFT <inverse = 1, onesided = 1> (x, \"\", a)", signal(2, 3, 4, 2),
         lambda z: torch.fft.irfft(z, dim=1), pre=["a = Constant <value_int = -3> ()"])
# dft_length = x.size(1) as the dynamo exporter writes it without its optimizer: Squeeze(Shape(x)[1:2]).
fft_case("dft_length_from_shape", 20, "DFT <onesided = 1> (x, n, a)", signal(2, 6, 3, 1), lambda z: torch.fft.rfft(z, dim=1),
         pre=["s = Shape <start = 1, end = 2> (x)", "z = Constant <value = int64[1] {0}> ()", "n = Squeeze(s, z)",
              "a = Constant <value_int = 1> ()"])
# FNet's token mixing: Re(fft over the hidden axis, then over the sequence axis) of real input.
fft_case("dft_fnet_mixing", 20, 'DFT (h, "", a1)', signal(2, 4, 6, 1), lambda z: torch.fft.fft(torch.fft.fft(z, dim=2), dim=1),
         pre=["a2 = Constant <value_int = 2> ()", 'h = DFT (x, "", a2)', "a1 = Constant <value_int = 1> ()"])


def col2im(name, n, c, image, block, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), opset=20):
    """Col2Im over a 2-D image (pads: begin h, begin w, end h, end w; F.fold pads both ends alike)."""
    assert pads[:2] == pads[2:]
    k = int(np.prod(block))
    l = 1
    for i in range(2):
        l *= (image[i] + 2 * pads[i] - dilations[i] * (block[i] - 1) - 1) // strides[i] + 1
    x = rng.uniform(-1, 1, size=(n, c * k, l)).astype(np.float32)
    node = "Col2Im <strides = [%s], pads = [%s], dilations = [%s]> (x, image, block)" % (
        ", ".join(map(str, strides)), ", ".join(map(str, pads)), ", ".join(map(str, dilations)))
    add(name, opset, node, {"x": x},
        lambda x: F.fold(x, tuple(image), tuple(block), dilation=tuple(dilations), padding=tuple(pads[:2]), stride=tuple(strides)),
        (n, c) + tuple(image), check_onnx=True, consts={"image": list(image), "block": list(block)})


# VOLO's outlook attention: fold(3x3 blocks, stride 2, pad 1) onto 8x8 (every image row covered).
col2im("col2im_volo", 2, 3, (8, 8), (3, 3), strides=(2, 2), pads=(1, 1, 1, 1))
# Dilation 2 and stride 2 over 8 rows: blocks cover rows 0..6 (3 blocks; the floor leaves row 7, which
# the decomposition's output_padding restores as zeros); an unequal block, overlaps summed.
col2im("col2im_dilated_uncovered", 1, 2, (8, 6), (2, 3), strides=(2, 1), dilations=(2, 1))
# A 1-D Col2Im is F.fold over a (1, W) image.
x = rng.uniform(-1, 1, size=(2, 2 * 3, 4)).astype(np.float32)
add("col2im_1d", 18, "Col2Im <strides = [2]> (x, image, block)", {"x": x},
    lambda x: F.fold(x, (1, 9), (1, 3), stride=(1, 2)).reshape(2, 2, 9), (2, 2, 9), check_onnx=True,
    consts={"image": [9], "block": [3]})


out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "decompose_cases.json")
with open(out, "w") as f:
    json.dump({"generator": "tests/frontend/gen_decompose_cases.py (torch %s)" % torch.__version__, "cases": CASES},
              f, separators=(",", ":"))
    f.write("\n")
print("wrote %d cases to %s" % (len(CASES), out))
