#!/usr/bin/env python3
"""Cross-check exported ONNX training graphs against the PyTorch reference loss
using onnxruntime (NOT a project dependency; run it from a throwaway venv):

    python3 -m venv /tmp/ortvenv && /tmp/ortvenv/bin/pip install onnxruntime numpy
    /tmp/ortvenv/bin/python tests/models_py/check_ort.py [ROOT]

ROOT defaults to models/.  For each ROOT/<name>/<name>.onnx with
reference/reference.json, runs the graph on the first ref_batch and
2*ref_batch samples of data/*.npy and compares with the stored PyTorch loss;
also runs batch sizes 1, 7 and all samples to exercise the dynamic batch dim.
Exit status 1 on any mismatch.
"""

import json
import os
import sys

import numpy as np
import onnxruntime as ort


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "models")
    ok = True
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name, name + ".onnx")
        ref_path = os.path.join(root, name, "reference", "reference.json")
        if not os.path.exists(path):
            continue
        opts = ort.SessionOptions()
        # Keep ORT from rewriting the graph; we want the graph as exported.
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]
        data = {n: np.load(os.path.join(root, name, "data", n + ".npy")) for n in names}
        nsamp = len(next(iter(data.values())))
        ref = json.load(open(ref_path)) if os.path.exists(ref_path) else {}
        rb = ref.get("ref_batch", 4)
        for nb in (1, rb, 7, 2 * rb, nsamp):
            (loss,) = sess.run(None, {n: data[n][:nb] for n in names})
            key = "loss_first_%d" % nb
            line = "%-10s batch=%-4d ort_loss=%.7f" % (name, nb, float(loss))
            if key in ref:
                diff = abs(float(loss) - ref[key])
                good = diff <= 1e-5 * max(1.0, abs(ref[key]))
                ok &= good
                line += "  torch=%.7f  |diff|=%.2e %s" % (ref[key], diff,
                                                         "OK" if good else "MISMATCH")
            elif not np.isfinite(loss):
                ok = False
                line += "  NOT FINITE"
            print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
