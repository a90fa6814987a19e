#!/usr/bin/python3
"""Checks for the bundled ONNX training models and the unseen-model exporter.

    /usr/bin/python3 -m unittest discover -s tests/models_py -v

Needs Debian's /usr/bin/python3 (torch 1.13, onnx 1.12, numpy).  The
onnxruntime cross-check runs only when onnxruntime is importable (it is not a
project dependency; see check_ort.py for the throwaway-venv way).
"""

import filecmp
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np
import onnx
import onnx.numpy_helper
import onnx.shape_inference

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODELS = os.path.join(ROOT, "models")
BUNDLED = ("mlp", "cnn", "gpt")
UNSEEN = ("mlp_mix", "cnn_s2g", "gpt_3l")
PY = sys.executable


def _tree(d):
    """Files export_models.py writes (trajectories come from reference_trajectories.py, which
    also writes reference/onebit/, reference_mixed_precision.py and deepspeed_trajectory.py)."""
    out = []
    for base, _, files in os.walk(d):
        if os.path.relpath(base, d).startswith((os.path.join("reference", "trajectories"),
                                                os.path.join("reference", "onebit"),
                                                os.path.join("reference", "mixed_precision"),
                                                os.path.join("reference", "deepspeed"))):
            continue
        for f in files:
            if f.endswith((".pyc",)):
                continue
            out.append(os.path.relpath(os.path.join(base, f), d))
    return sorted(out)


def _check_training_graph(tc, root, name):
    path = os.path.join(root, name, name + ".onnx")
    m = onnx.load(path)
    onnx.checker.check_model(m)
    onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
    tc.assertEqual([o.name for o in m.graph.output], ["loss"])
    tc.assertEqual(len(m.graph.output[0].type.tensor_type.shape.dim), 0)  # scalar
    tc.assertEqual(m.opset_import[0].version, 17)
    for inp in m.graph.input:
        tc.assertEqual(inp.type.tensor_type.shape.dim[0].dim_param, "batch", inp.name)
        tc.assertTrue(os.path.exists(os.path.join(root, name, "data", inp.name + ".npy")))
    inits = {i.name for i in m.graph.initializer}
    tc.assertFalse(inits & {i.name for i in m.graph.input})  # not kept as inputs
    for i in inits:
        tc.assertFalse(i.startswith("onnx::"), i)  # meaningful parameter names
    # No value-based initializer de-duplication (would tie parameters via Identity).
    tc.assertNotIn("Identity", {n.op_type for n in m.graph.node})
    with open(os.path.join(root, name, "reference", "reference.json")) as f:
        ref = json.load(f)
    tc.assertEqual(sorted(ref["trainable"] + ref["non_trainable"]), sorted(inits))
    for p in ref["trainable"]:
        g = np.load(os.path.join(root, name, "reference", "grads", p + ".npy"))
        init = next(i for i in m.graph.initializer if i.name == p)
        tc.assertEqual(list(g.shape), list(init.dims), p)
    return m, ref


class BundledModels(unittest.TestCase):
    def test_graphs(self):
        for name in BUNDLED:
            with self.subTest(name=name):
                m, _ = _check_training_graph(self, MODELS, name)
                self.assertLess(os.path.getsize(os.path.join(MODELS, name, name + ".onnx")),
                                400 * 1024)

    def test_reexport_is_byte_identical(self):
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([PY, os.path.join(MODELS, "export_models.py"), "--out", tmp,
                            "--quiet"], check=True, stderr=subprocess.DEVNULL)
            for name in BUNDLED:
                files = _tree(os.path.join(tmp, name))
                self.assertEqual(files, _tree(os.path.join(MODELS, name)), name)
                for f in files:
                    self.assertTrue(filecmp.cmp(os.path.join(tmp, name, f),
                                                os.path.join(MODELS, name, f),
                                                shallow=False), name + "/" + f)

    def test_pytorch_matches_reference(self):
        import torch
        sys.path.insert(0, MODELS)
        import export_models as E
        for name, model, data in E.build_bundled():
            with self.subTest(name=name):
                # Initial weights in the ONNX file == seeded PyTorch module.
                m = onnx.load(os.path.join(MODELS, name, name + ".onnx"))
                sd = model.state_dict()
                for init in m.graph.initializer:
                    np.testing.assert_array_equal(onnx.numpy_helper.to_array(init),
                                                  sd[init.name].numpy(), init.name)
                model.train()
                with open(os.path.join(MODELS, name, "reference", "reference.json")) as f:
                    ref = json.load(f)
                nb = ref["ref_batch"]
                loss = model(*[torch.from_numpy(v[:nb]) for v in data.values()])
                self.assertAlmostEqual(loss.item(), ref["loss_first_%d" % nb], places=5)

    def test_onnxruntime_matches_reference(self):
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            self.skipTest("onnxruntime not installed (optional)")
        r = subprocess.run([PY, os.path.join(os.path.dirname(__file__), "check_ort.py"),
                            MODELS], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


class UnseenModels(unittest.TestCase):
    def test_export_unseen_quick_and_deterministic(self):
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            t0 = time.time()
            for d in (a, b):
                subprocess.run([PY, os.path.join(MODELS, "export_unseen.py"), d, "--quiet"],
                               check=True, stderr=subprocess.DEVNULL)
            self.assertLess(time.time() - t0, 40.0)  # < 20 s per run
            self.assertEqual(_tree(a), _tree(b))
            for f in _tree(a):
                self.assertTrue(filecmp.cmp(os.path.join(a, f), os.path.join(b, f),
                                            shallow=False), f)
            for name in UNSEEN:
                with self.subTest(name=name):
                    _check_training_graph(self, a, name)


if __name__ == "__main__":
    unittest.main()
