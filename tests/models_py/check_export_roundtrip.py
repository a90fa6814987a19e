#!/usr/bin/env python3
"""Trained weights out of dsrun, checked by their real consumers (issue 12, "done when"):

  (a) ONNX Runtime evaluates the exported ONNX model on the batch of step K+1 and gets the loss
      dsrun reported for step K+1 (its forward pass ran on the weights after step K);
  (b) the exported safetensors file loads with safetensors.torch.load_file into the PyTorch module
      the ONNX model was exported from (models/export_models.py), load_state_dict(strict=True),
      and gives that loss too; its tensors equal the ONNX initializers bit for bit.

The weights after step K come from a checkpoint dsrun saves (--save-dir, exported with dsinspect
--export-onnx/--export-safetensors), or, from a dsrun that cannot save yet, from a second run of K
steps with --export-onnx (and --export-safetensors when dsrun has it); (b) needs one of the two.

    python check_export_roundtrip.py --dscompile BIN --dsrun BIN --dsinspect BIN [--keep DIR]

Needs numpy, torch, onnx, onnxruntime and safetensors (from PyPI; run it from a venv). Under ctest it
is started by the project's python: when DSC_ROUNDTRIP_PYTHON names another interpreter it
re-runs itself there; without the packages it exits 77, which ctest reports as skipped.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

SKIP = 77
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
MODEL = os.path.join(ROOT, "models", "mlp", "mlp.onnx")
DATA = os.path.join(ROOT, "models", "mlp", "data")
TOL = 1e-5
STEPS = 4  # the weights after step STEPS-1 are exported; step STEPS's loss is the reference

# fp32 (so dsrun's forward pass runs on exactly the exported weights), Adam with a large enough
# learning rate that three steps move the weights far from the initial ones. One rank; then two
# ranks at ZeRO-3, where every parameter, master and moment is saved as two shards.
BATCH = 16
CASES = [
    ("1 rank, ZeRO-0", 1, {"train_batch_size": BATCH, "train_micro_batch_size_per_gpu": 8,
                           "optimizer": {"type": "Adam", "params": {"lr": 0.01}},
                           "zero_optimization": {"stage": 0}}),
    ("2 ranks, ZeRO-3", 2, {"train_batch_size": BATCH, "train_micro_batch_size_per_gpu": 4,
                            "optimizer": {"type": "Adam", "params": {"lr": 0.01}},
                            "zero_optimization": {"stage": 3}}),
]


def reexec_if_asked():
    want = os.environ.get("DSC_ROUNDTRIP_PYTHON")
    # Not realpath: a venv's python is a link to the system one, and the link is what selects the venv.
    if want and os.path.abspath(want) != os.path.abspath(sys.executable) and not os.environ.get("_DSC_RT_CHILD"):
        if not os.access(want, os.X_OK):
            print("SKIP: DSC_ROUNDTRIP_PYTHON=%s is not an executable" % want)
            sys.exit(SKIP)
        os.environ["_DSC_RT_CHILD"] = "1"
        os.execv(want, [want] + sys.argv)


def run(cmd, what):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        sys.exit("%s failed (exit %d): %s\n%s" % (what, p.returncode, " ".join(cmd), p.stdout))
    return p.stdout


def main():
    reexec_if_asked()
    try:
        import numpy as np
        import onnx  # noqa: F401  (the bitwise comparison reads the ONNX initializers)
        import onnxruntime as ort
        import safetensors
        import safetensors.torch
        import torch
    except ImportError as e:
        print("SKIP: %s lacks a package the round trip needs (%s); set DSC_ROUNDTRIP_PYTHON to a "
              "python with numpy, torch, onnx, onnxruntime and safetensors" % (sys.executable, e))
        return SKIP

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dscompile", required=True)
    ap.add_argument("--dsrun", required=True)
    ap.add_argument("--dsinspect", required=True)
    ap.add_argument("--keep", help="work in this folder and keep it (default: a temporary one)")
    args = ap.parse_args()

    work = args.keep or tempfile.mkdtemp(prefix="dsc-roundtrip-")
    os.makedirs(work, exist_ok=True)
    try:
        ok = True
        for name, world, config in CASES:
            print("== %s" % name)
            case_dir = os.path.join(work, "world%d" % world)
            os.makedirs(case_dir, exist_ok=True)
            ok &= check(args, case_dir, world, config, np, ort, safetensors, torch)
        return 0 if ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


# One case: True when every check passed.
def check(args, work, world, config, np, ort, safetensors, torch):
    cfg = os.path.join(work, "ds.json")
    with open(cfg, "w") as f:
        json.dump(config, f)
    plan = os.path.join(work, "mlp.plan")
    run([args.dscompile, MODEL, "--config", cfg, "--world-size", str(world), "-o", plan], "dscompile")
    dsrun_help = run([args.dsrun, "--help"], "dsrun --help")
    batch = config["train_batch_size"]
    common = [args.dsrun, plan, "--data", DATA, "--no-shuffle", "-q"] + (["--nproc", str(world)] if world > 1 else [])

    onnx_out = os.path.join(work, "after%d.onnx" % (STEPS - 1))
    st_out = os.path.join(work, "after%d.safetensors" % (STEPS - 1))
    metrics = os.path.join(work, "m.jsonl")
    if "--save-dir" in dsrun_help:
        # One run: the checkpoint after step STEPS-1, exported by dsinspect.
        ckpt = os.path.join(work, "ckpt")
        run(common + ["--steps", str(STEPS), "--metrics", metrics, "--save-dir", ckpt,
                      "--save-every", str(STEPS - 1)], "dsrun --save-dir")
        tag = os.path.join(ckpt, "global_step%d" % (STEPS - 1))
        run([args.dsinspect, "--export-onnx", tag, onnx_out, "--export-safetensors", tag, st_out],
            "dsinspect --export-onnx/--export-safetensors")
        source = "checkpoint %s via dsinspect" % tag
    else:
        run(common + ["--steps", str(STEPS), "--metrics", metrics], "dsrun")
        export = ["--export-onnx", onnx_out]
        if "--export-safetensors" in dsrun_help:
            export += ["--export-safetensors", st_out]
        run(common + ["--steps", str(STEPS - 1)] + export, "dsrun --export-onnx")
        source = "a second dsrun of %d steps with %s" % (STEPS - 1, " ".join(export[::2]))
    print("weights after step %d from %s" % (STEPS - 1, source))

    with open(metrics) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if len(rows) != STEPS:
        sys.exit("%s has %d rows, expected %d" % (metrics, len(rows), STEPS))
    ref = float(rows[-1]["loss"])
    first = float(rows[0]["loss"])
    x = np.load(os.path.join(DATA, "x.npy"))
    y = np.load(os.path.join(DATA, "y.npy"))
    lo, hi = (STEPS - 1) * batch, STEPS * batch
    xb, yb = x[lo:hi], y[lo:hi]
    ok = True

    def verdict(name, loss):
        nonlocal ok
        diff = abs(loss - ref)
        good = diff <= TOL * max(1.0, abs(ref))
        ok &= good
        print("%-28s loss=%.9f  dsrun step %d loss=%.9f  |diff|=%.2e  %s"
              % (name, loss, STEPS, ref, diff, "OK" if good else "MISMATCH (tolerance %g)" % TOL))

    # (a) ONNX Runtime, the graph as exported (no ORT rewrites).
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(onnx_out, opts, providers=["CPUExecutionProvider"])
    (ort_loss,) = sess.run(None, {"x": xb, "y": yb})
    verdict("(a) onnxruntime %s" % ort.__version__, float(ort_loss))
    # The exported weights are trained ones: the initial model gives another loss.
    init = ort.InferenceSession(MODEL, opts, providers=["CPUExecutionProvider"])
    (init_loss,) = init.run(None, {"x": xb, "y": yb})
    if abs(float(init_loss) - ref) <= TOL:
        ok = False
        print("MISMATCH: the initial model gives the same loss; nothing was trained")
    print("    (initial weights on that batch: %.6f; dsrun step 1 loss: %.6f)" % (float(init_loss), first))

    if not os.path.exists(st_out):
        print("(b) not run: this dsrun has neither --save-dir nor --export-safetensors")
        return ok

    # (b) safetensors into the PyTorch module the ONNX came from.
    sys.path.insert(0, os.path.join(ROOT, "models"))
    from export_models import MLP

    with safetensors.safe_open(st_out, framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != "pt":
        ok = False
        print("MISMATCH: __metadata__ format is %r (Hugging Face needs 'pt')" % meta.get("format"))
    state = safetensors.torch.load_file(st_out)
    model = MLP()
    model.load_state_dict(state, strict=True)
    model.train()  # as exported (no dropout or BatchNorm in the mlp: the same as eval)
    with torch.no_grad():
        pt_loss = model(torch.from_numpy(xb), torch.from_numpy(yb)).item()
    verdict("(b) torch %s + safetensors %s" % (torch.__version__, safetensors.__version__), float(pt_loss))

    # Both files hold the same weights, bit for bit.
    import onnx
    import onnx.numpy_helper
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(onnx_out).graph.initializer}
    for name, t in state.items():
        a = t.numpy()
        same = name in inits and a.dtype == inits[name].dtype and a.shape == inits[name].shape and \
            a.tobytes() == inits[name].tobytes()
        if not same:
            ok = False
            print("MISMATCH: safetensors tensor %s differs from the ONNX initializer" % name)
    if set(state) != set(inits):
        ok = False
        print("MISMATCH: names differ: safetensors %s, onnx %s" % (sorted(state), sorted(inits)))
    print("safetensors and ONNX initializers: %d tensors, %s" % (len(state), "identical" if ok else "see above"))
    return ok


if __name__ == "__main__":
    sys.exit(main())
