#!/usr/bin/python3
"""Checks for tools/export_for_training.py (parameter <-> initializer mapping, metadata) and the
committed models/current/ files (manifest, references).

    /usr/bin/python3 -m unittest tests/models_py/test_export_for_training.py -v

Runs with Debian's torch 1.13 (the helper's legacy-exporter path); the current-PyTorch files were
written by models/export_current.py under torch 2.15 and are only read here.
"""

import collections
import copy
import json
import os
import sys
import tempfile
import unittest

import numpy as np
import onnx
import onnx.numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import export_for_training as X  # noqa: E402

CURRENT = os.path.join(ROOT, "models", "current")


class TwoNorms(nn.Module):
    """Two LayerNorms with equal initial values (what exporters like to merge) and a frozen weight."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.ln1 = nn.LayerNorm(16)
        self.ln2 = nn.LayerNorm(16)
        self.fc2 = nn.Linear(16, 4)
        self.fc2.weight.requires_grad_(False)
        self.unused = nn.Linear(2, 2)

    def forward(self, x, y):
        return F.cross_entropy(self.fc2(self.ln2(self.ln1(self.fc1(x)))), y)


def _make():
    torch.manual_seed(0)
    return TwoNorms(), (torch.randn(4, 8), torch.randint(0, 4, (4,)))


class HelperTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.tmp.name, "m.onnx")
        self.module, self.args = _make()
        self.logs = []
        self.info = X.export_for_training(self.module, self.args, self.path, log=self.logs.append)
        self.model = onnx.load(self.path)

    def tearDown(self):
        self.tmp.cleanup()

    def test_metadata_lists_exactly_the_used_parameters(self):
        meta = X.read_metadata(self.model)
        self.assertEqual(meta["version"], 1)
        self.assertIn("torch %s" % torch.__version__, meta["exporter"])
        used = ["fc1.weight", "fc1.bias", "ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias", "fc2.bias"]
        self.assertEqual([e["torch_name"] for e in meta["trainable"]], used)
        self.assertEqual([e["initializer"] for e in meta["trainable"]], used)
        self.assertEqual(meta["frozen"], [{"initializer": "fc2.weight", "torch_name": "fc2.weight"}])
        self.assertTrue(any("'unused.weight' is not used" in m for m in self.logs), self.logs)
        self.assertTrue(any("7 trainable parameters" in m for m in self.logs), self.logs)

    def test_initializers_hold_the_module_weights(self):
        inits = {t.name: onnx.numpy_helper.to_array(t) for t in self.model.graph.initializer}
        for e in X.read_metadata(self.model)["trainable"]:
            p = dict(self.module.named_parameters())[e["torch_name"]]
            np.testing.assert_array_equal(inits[e["initializer"]], p.detach().numpy())
        self.assertEqual([i.name for i in self.model.graph.input], ["x", "y"])
        self.assertEqual(self.model.graph.input[0].type.tensor_type.shape.dim[0].dim_param, "batch")
        onnx.checker.check_model(self.model)

    def _remap(self, edit):
        m = copy.deepcopy(self.model)
        edit(m.graph)
        return X.map_parameters(m, self.module, unused={"unused.weight", "unused.bias"})

    @staticmethod
    def _init(g, name):
        return next(t for t in g.initializer if t.name == name)

    def test_renamed_and_transposed_initializers_map_by_value(self):
        def edit(g):
            self._init(g, "fc1.bias").name = "onnx::Add_7"
            w = self._init(g, "fc1.weight")
            w.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(w).T.copy(), "onnx::MatMul_9"))
        r = self._remap(edit)
        self.assertEqual(r["problems"], [])
        by_torch = {e["torch_name"]: e for e in r["trainable"]}
        self.assertEqual(by_torch["fc1.bias"], {"initializer": "onnx::Add_7", "torch_name": "fc1.bias"})
        self.assertEqual(by_torch["fc1.weight"],
                         {"initializer": "onnx::MatMul_9", "torch_name": "fc1.weight", "transposed": True})

    def test_merged_equal_valued_initializers_are_refused(self):
        def edit(g):
            for name in ("ln2.weight", "ln2.bias"):
                g.initializer.remove(self._init(g, name))
        r = self._remap(edit)
        self.assertEqual(r["merged"], {"ln1.weight": ["ln1.weight", "ln2.weight"],
                                       "ln1.bias": ["ln1.bias", "ln2.bias"]})
        self.assertEqual(len(r["problems"]), 2)
        self.assertIn("'ln2.weight' has no initializer of its own", r["problems"][0])

    def test_folded_and_duplicated_parameters_are_refused(self):
        def edit(g):
            g.initializer.remove(self._init(g, "fc1.bias"))
            copy_ = onnx.numpy_helper.to_array(self._init(g, "fc1.weight")).T.copy()
            g.initializer.append(onnx.numpy_helper.from_array(copy_, "val_3"))
            g.initializer.append(onnx.numpy_helper.from_array(np.array(2.0, np.float32), "val_4"))
        r = self._remap(edit)
        self.assertEqual(r["missing"], ["fc1.bias"])
        self.assertEqual(r["duplicates"], [{"initializer": "val_3", "copy_of": "fc1.weight"}])
        self.assertEqual(r["constants"], [{"initializer": "val_4", "dtype": "float32", "shape": []}])
        self.assertEqual(len(r["problems"]), 2)

    def test_unused_parameter_does_not_match_a_buffer_by_value(self):
        # Conditional DETR with one decoder layer never calls query_scale: its zero biases have no
        # initializer, and the backbone's zero running means (buffers) must not stand in for them.
        module = copy.deepcopy(self.module)
        module.register_buffer("stat", torch.zeros(2))
        with torch.no_grad():
            module.unused.bias.zero_()
        m = copy.deepcopy(self.model)
        m.graph.initializer.append(onnx.numpy_helper.from_array(np.zeros(2, np.float32), "stat"))
        r = X.map_parameters(m, module, unused={"unused.weight", "unused.bias"})
        self.assertEqual(r["problems"], [])
        self.assertNotIn("unused.bias", [e["torch_name"] for e in r["trainable"]])
        self.assertIn("unused.bias", r["unused"])
        self.assertIn("stat", r["buffers"])

    def test_cli_show(self):
        import subprocess
        out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "export_for_training.py"),
                              "--show", self.path], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout), X.read_metadata(self.model))


@unittest.skipUnless(os.path.exists(os.path.join(CURRENT, "manifest.json")), "no models/current")
class PaddedEmbedding(nn.Module):
    """nn.Embedding with padding_idx (given negative: recorded as the row it names) and one without."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4, padding_idx=-8)
        self.pos = nn.Embedding(5, 4)
        self.fc = nn.Linear(4, 3)

    def forward(self, ids, labels):
        x = self.emb(ids) + self.pos(torch.arange(ids.shape[1]))
        return F.cross_entropy(self.fc(x).mean(1), labels)


class Regression(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x, target):
        return ((self.fc(x) - target) ** 2).mean()


class AliasedInputsTest(unittest.TestCase):
    """(x, x) as example inputs: traced or exported, the graph would read the first input for both
    (torch.export specialises to the aliasing), computing another function for distinct inputs."""

    def test_aliased_example_inputs_are_copied(self):
        torch.manual_seed(0)
        module = Regression()
        x = torch.randn(3, 4)
        logs = []
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.onnx")
            X.export_for_training(module, (x, x), path, log=logs.append)
            m = onnx.load(path)
        read = {i for n in m.graph.node for i in n.input}
        self.assertEqual(len(m.graph.input), 2)
        for inp in m.graph.input:
            self.assertIn(inp.name, read, "graph input %s is read by no node" % inp.name)
        self.assertTrue(any("shares memory" in line for line in logs), logs)


class EmbeddingPaddingTest(unittest.TestCase):
    def test_padding_rows_are_recorded(self):
        torch.manual_seed(0)
        module = PaddedEmbedding()
        args = (torch.tensor([[2, 1, 3, 4, 2], [0, 2, 5, 6, 7]]), torch.tensor([0, 2]))
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.onnx")
            X.export_for_training(module, args, path, log=lambda m: None)
            m = onnx.load(path)
        meta = {p.key: json.loads(p.value) for p in m.metadata_props}
        self.assertEqual(meta[X.PADDING_KEY], {"emb.weight": 2})


class CurrentModelsTest(unittest.TestCase):
    def setUp(self):
        with open(os.path.join(CURRENT, "manifest.json")) as f:
            self.manifest = json.load(f)

    def test_manifest_describes_the_files(self):
        listed = set()
        for e in self.manifest["files"]:
            path = os.path.join(CURRENT, e["file"])
            self.assertTrue(os.path.exists(os.path.join(CURRENT, e["reference"])), e["reference"])
            if e["status"] != "ok":
                self.assertFalse(os.path.exists(path), path)
                self.assertTrue(e["error"], e["file"])
                continue
            listed.add(e["file"])
            m = onnx.load(path)
            ops = collections.Counter()
            graphs = [m.graph]  # subgraphs count too (the exporters' embedding_bag Loop), as the manifest's
            while graphs:
                for n in graphs.pop().node:
                    ops[(n.domain + "::" if n.domain not in ("", "ai.onnx") else "") + n.op_type] += 1
                    for a in n.attribute:
                        graphs += ([a.g] if a.type == onnx.AttributeProto.GRAPH else []) + list(a.graphs)
            if not m.functions:
                self.assertEqual(dict(ops), e["op_types"], e["file"])
            self.assertEqual(len(m.graph.initializer), e["initializers"], e["file"])
            self.assertEqual(m.ir_version, e["ir_version"], e["file"])
            self.assertLess(os.path.getsize(path), 1 << 20, e["file"])
            if e["mode"] in ("helper", "dynamo_default_noopt", "dynamo18_noopt"):
                self.assertTrue(e["every_parameter_own_initializer"], e["file"])
        on_disk = {os.path.relpath(os.path.join(b, f), CURRENT)
                   for b, _, fs in os.walk(CURRENT) for f in fs if f.endswith(".onnx")}
        self.assertEqual(on_disk, listed)

    def test_helper_files_list_pytorchs_parameters(self):
        for e in self.manifest["files"]:
            if e["mode"] != "helper" or e["status"] != "ok":
                continue
            d = os.path.join(CURRENT, e["model"])
            with open(os.path.join(d, "reference", "parameters.json")) as f:
                params = json.load(f)
            m = onnx.load(os.path.join(CURRENT, e["file"]))
            meta = X.read_metadata(m)
            want = [p["name"] for p in params["parameters"] if p["trainable"]]
            self.assertEqual(sorted(x["torch_name"] for x in meta["trainable"]), sorted(want), e["file"])
            self.assertEqual(params["trainable_count"], len(meta["trainable"]))
            shapes = {p["name"]: p["shape"] for p in params["parameters"]}
            inits = {t.name: list(t.dims) for t in m.graph.initializer}
            for x in meta["trainable"]:
                s = shapes[x["torch_name"]]
                self.assertEqual(inits[x["initializer"]], s[::-1] if x.get("transposed") else s)
            for name in params["inputs"]:
                a = np.load(os.path.join(d, "data", name + ".npy"))
                self.assertEqual(list(a.shape), params["inputs"][name]["shape"])
            with open(os.path.join(CURRENT, e["reference"])) as f:
                ref = json.load(f)
            self.assertEqual(len(ref["loss"]), ref["steps"])
            self.assertTrue(all(np.isfinite(ref["loss"])))
            self.assertLess(ref["loss"][-1], ref["loss"][0])


if __name__ == "__main__":
    unittest.main()
