#!/usr/bin/env python3
"""GPU training benchmark: a GPT-2-small-shaped model, dsrun --device cuda against PyTorch eager and torch.compile.

    python3 bench/bench_gpu.py [--steps K] [--warmup W] [--batch B] [--json OUT.json]
    /opt/torchenv/bin/python bench/bench_gpu.py --tiny --device cpu     # code-path check without a GPU

Model (random init, torch.manual_seed(0)): 12 layers, 768 wide, 12 heads, sequence 1024, vocab
50257, learned positions, pre-LN blocks with F.scaled_dot_product_attention(is_causal=True) and
erf GELU, untied head; loss = cross entropy over all positions (the SDPA GPT of
models/export_current.py at GPT-2 small size).  --tiny: 2 layers, 64 wide, 2 heads, seq 32,
vocab 128, batch 2.

dsrun side: the module is exported with tools/export_for_training.py (torch >= 2: the dynamo
exporter, optimize=False, dynamic batch), compiled by dscompile with a DeepSpeed config written
here (bf16.enabled: bf16 model with fp32 master weights, AdamW lr 1e-4 betas 0.9/0.95 wd 0.1,
gradient_clipping 1.0, micro-batch B x 1 accumulation step), and trained by
`dsrun PLAN --data DIR --steps W+K --no-shuffle --device D --metrics M.jsonl` on random tokens
(input_ids.npy and labels.npy: the graph's input names; 2 x B samples, so epochs repeat).  Time per
step: median of the metrics' step_time_s over the K steps after W warm-up; memory: the last
metrics line's peak_allocated_bytes (the device allocator's high-water mark).

PyTorch side, each in its own process on the same device: the same module (same seed, so the same
initial weights) with fp32 parameters under torch.autocast(bf16) (fp32 master weights by
construction), AdamW (fused on CUDA) with the same hyper-parameters, clip_grad_norm_(1.0), the
same batches in the same order; eager, then torch.compile(model).  Time per step: median wall time
(torch.cuda.synchronize around each step) of the K steps after W warm-up; memory:
torch.cuda.max_memory_allocated().

FLOPs per step = tokens x (6 x N + 12 x L x d x T): N = parameters outside the embedding tables
(the head is counted), the attention score and value matmuls as in PaLM's MFU (not halved for
causality).  MFU = FLOPs / step time / the GPU's dense bf16 peak, from its name: H100 SXM and
H200 989 TFLOP/s, H100 PCIe 756, A100 312 (printed; unknown names get no MFU).  On the CPU no
MFU is reported.

A side that fails is reported with its reason and the others still run.  Exit status 0 when
dsrun and PyTorch eager both ran, 2 when dsrun failed, 1 otherwise.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

GPT2_SMALL = dict(vocab=50257, seq=1024, n_embd=768, n_head=12, n_layer=12, batch=8)
TINY = dict(vocab=128, seq=32, n_embd=64, n_head=2, n_layer=2, batch=2)
OPTIM = dict(lr=1e-4, betas=[0.9, 0.95], eps=1e-8, weight_decay=0.1)

# Dense bf16 tensor-core peaks (no sparsity), by device-name substring, first match wins.
PEAKS = [("H200", 989e12, "H200 (SXM-class, same as H100 SXM)"),
         ("H100 PCIe", 756e12, "H100 PCIe"),
         ("H100", 989e12, "H100 SXM"),
         ("A100", 312e12, "A100")]


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--tiny", action="store_true", help="tiny sizes (a code-path check)")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 3; --tiny 1)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 10; --tiny 3)")
    ap.add_argument("--batch", type=int, default=None, help="micro-batch = global batch (default 8; --tiny 2)")
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build"),
                    help="where tools/dscompile and tools/dsrun are (default: build/)")
    ap.add_argument("--dscompile", help="the dscompile program (default: BUILD/tools/dscompile)")
    ap.add_argument("--dsrun", help="the dsrun program (default: BUILD/tools/dsrun)")
    ap.add_argument("--workdir", help="keep the model, data, plan and logs here (default: a temp dir, removed)")
    ap.add_argument("--no-compile", action="store_true", help="leave out torch.compile")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per side (export, dscompile, dsrun, "
                    "each torch run)")
    ap.add_argument("--json", help="also write the results as JSON here")
    ap.add_argument("--profile", metavar="FILE",
                    help="after the timed run, profile 3 dsrun steps (dsrun --profile-json FILE; its table goes to "
                         "FILE with .txt for .json): where dsrun's step goes, node by node")
    ap.add_argument("--worker", choices=["eager", "compile"], help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    a.warmup = a.warmup if a.warmup is not None else (1 if a.tiny else 3)
    a.steps = a.steps if a.steps is not None else (3 if a.tiny else 10)
    if a.warmup < 0 or a.steps < 1:
        ap.error("need --warmup >= 0 and --steps >= 1")
    a.dscompile = a.dscompile or os.path.join(a.build_dir, "tools", "dscompile")
    a.dsrun = a.dsrun or os.path.join(a.build_dir, "tools", "dsrun")
    return a


# ---------------------------------------------------------------------------------------- model

def build_model(spec):
    """The SDPA GPT of models/export_current.py (the one the current-export tests train) at the
    benchmark's sizes, with GPT-2's init: N(0, 0.02) weights, zero biases."""
    import torch
    import torch.nn as nn
    sys.path.insert(0, os.path.join(REPO, "models"))
    from export_current import SDPAModel

    torch.manual_seed(0)
    m = SDPAModel(spec["vocab"], spec["seq"], spec["n_embd"], spec["n_head"], spec["n_layer"])
    for mod in m.modules():
        if isinstance(mod, (nn.Linear, nn.Embedding)):
            nn.init.normal_(mod.weight, 0.0, 0.02)
            if getattr(mod, "bias", None) is not None:
                nn.init.zeros_(mod.bias)
    return m


def flops_per_step(spec, n_params_dense):
    tokens = spec["batch"] * spec["seq"]
    return tokens * (6 * n_params_dense + 12 * spec["n_layer"] * spec["n_embd"] * spec["seq"])


def load_batches(workdir):
    import numpy as np
    ids = np.load(os.path.join(workdir, "data", "input_ids.npy"))
    labels = np.load(os.path.join(workdir, "data", "labels.npy"))
    return ids, labels


# ---------------------------------------------------------------------------------------- torch worker

def torch_worker(a):
    """One PyTorch side in this process; prints one JSON line."""
    import torch
    with open(os.path.join(a.workdir, "spec.json")) as f:
        spec = json.load(f)
    dev = torch.device(a.device)
    model = build_model(spec).to(dev)
    model.train()
    fused = a.device == "cuda"
    opt = torch.optim.AdamW(model.parameters(), lr=OPTIM["lr"], betas=tuple(OPTIM["betas"]), eps=OPTIM["eps"],
                            weight_decay=OPTIM["weight_decay"], fused=fused, foreach=None if fused else True)
    run = torch.compile(model) if a.worker == "compile" else model
    ids, labels = load_batches(a.workdir)
    n, b = ids.shape[0], spec["batch"]
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    if a.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    for s in range(a.warmup + a.steps):
        i = (s * b) % n
        x = torch.from_numpy(ids[i:i + b]).to(dev)
        y = torch.from_numpy(labels[i:i + b]).to(dev)
        sync()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=a.device, dtype=torch.bfloat16):
            loss = run(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sync()
        times.append(time.perf_counter() - t0)
        losses.append(float(loss.detach().float().cpu()))
    peak = torch.cuda.max_memory_allocated() if a.device == "cuda" else None
    print("RESULT " + json.dumps({"step_times": times, "losses": losses, "peak_bytes": peak,
                                  "torch": torch.__version__}))


# ---------------------------------------------------------------------------------------- driver

def run(cmd, timeout, log_path, env=None):
    """Runs cmd with its output in log_path; returns (ok, reason)."""
    t0 = time.time()
    with open(log_path, "w") as log:
        try:
            p = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            return False, "timed out after %.0fs" % timeout
        except OSError as e:
            return False, "%s: %s" % (cmd[0], e)
    if p.returncode != 0:
        with open(log_path) as f:
            tail = [l.strip() for l in f.read().splitlines() if l.strip()][-3:]
        return False, "exit %d after %.0fs: %s" % (p.returncode, time.time() - t0, " | ".join(tail)[:400])
    return True, ""


def prepare(a, spec, workdir):
    """Exports the model and writes data, config and spec; returns (n_params, n_dense, export info)."""
    import numpy as np
    import torch
    sys.path.insert(0, os.path.join(REPO, "tools"))
    import export_for_training as X

    model = build_model(spec)
    n_params = sum(p.numel() for p in model.parameters())
    n_embed = model.tok.weight.numel() + model.pos.weight.numel()
    os.makedirs(os.path.join(workdir, "data"), exist_ok=True)
    rng = np.random.RandomState(0)
    n = 2 * spec["batch"]
    tokens = rng.randint(0, spec["vocab"], size=(n, spec["seq"] + 1)).astype(np.int64)
    np.save(os.path.join(workdir, "data", "input_ids.npy"), np.ascontiguousarray(tokens[:, :-1]))
    np.save(os.path.join(workdir, "data", "labels.npy"), np.ascontiguousarray(tokens[:, 1:]))
    example = (torch.from_numpy(tokens[:2, :-1].copy()), torch.from_numpy(tokens[:2, 1:].copy()))
    t0 = time.time()
    info = X.export_for_training(model, example, os.path.join(workdir, "model.onnx"),
                                 log=lambda s: print("  " + s))
    export_s = time.time() - t0
    if info["inputs"] != ["input_ids", "labels"]:
        raise RuntimeError("unexpected graph inputs %s" % info["inputs"])
    config = {"train_batch_size": spec["batch"], "train_micro_batch_size_per_gpu": spec["batch"],
              "gradient_accumulation_steps": 1, "gradient_clipping": 1.0, "steps_per_print": 1000000,
              "optimizer": {"type": "AdamW", "params": OPTIM}, "bf16": {"enabled": True}}
    with open(os.path.join(workdir, "config.json"), "w") as f:
        json.dump(config, f, indent=1)
    with open(os.path.join(workdir, "spec.json"), "w") as f:
        json.dump(spec, f)
    return n_params, n_params - n_embed, info, export_s


def dsrun_side(a, workdir):
    plan = os.path.join(workdir, "model.dsplan")
    metrics = os.path.join(workdir, "dsrun_metrics.jsonl")
    for p in (a.dscompile, a.dsrun):
        if not os.access(p, os.X_OK):
            return {"error": "%s is not an executable (build it, or give --dscompile/--dsrun)" % p}
    t0 = time.time()
    ok, why = run([a.dscompile, os.path.join(workdir, "model.onnx"), "--config", os.path.join(workdir, "config.json"),
                   "-q", "-o", plan], a.timeout, os.path.join(workdir, "dscompile.log"))
    if not ok:
        return {"error": "dscompile " + why}
    compile_s = time.time() - t0
    if os.path.exists(metrics):
        os.remove(metrics)
    ok, why = run([a.dsrun, plan, "--data", os.path.join(workdir, "data"), "--steps", str(a.warmup + a.steps),
                   "--no-shuffle", "--device", a.device, "--metrics", metrics, "-q"],
                  a.timeout, os.path.join(workdir, "dsrun.log"))
    if not ok:
        return {"error": "dsrun " + why, "compile_s": compile_s}
    with open(metrics) as f:
        lines = [json.loads(l) for l in f if l.strip()]
    if len(lines) != a.warmup + a.steps:
        return {"error": "dsrun wrote %d metrics lines, expected %d" % (len(lines), a.warmup + a.steps)}
    r = {"step_times": [l["step_time_s"] for l in lines], "losses": [l["loss"] for l in lines],
         "peak_bytes": lines[-1].get("peak_allocated_bytes"), "compile_s": compile_s}
    if a.profile:
        # A run of its own: --profile synchronises the GPU after every node, which the timed run must not.
        table = os.path.splitext(a.profile)[0] + ".txt"
        ok, why = run([a.dsrun, plan, "--data", os.path.join(workdir, "data"), "--steps", "3", "--no-shuffle",
                       "--device", a.device, "--profile-json", os.path.abspath(a.profile), "-q"], a.timeout, table)
        r["profile"] = table if ok else "dsrun --profile " + why
    return r


def torch_side(a, workdir, kind):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--workdir", workdir, "--device", a.device,
           "--warmup", str(a.warmup), "--steps", str(a.steps)]
    log = os.path.join(workdir, "torch_%s.log" % kind)
    ok, why = run(cmd, a.timeout, log)
    if not ok:
        return {"error": "torch %s %s" % (kind, why)}
    with open(log) as f:
        for line in f:
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT "):])
    return {"error": "torch %s printed no RESULT line (see %s)" % (kind, log)}


def gpu_peak(a):
    if a.device != "cuda":
        return None, "cpu: no MFU"
    import torch
    name = torch.cuda.get_device_name(0)
    for key, peak, what in PEAKS:
        if key in name:
            return peak, "%s: dense bf16 peak %.0f TFLOP/s taken for %s" % (name, peak / 1e12, what)
    return None, "%s: dense bf16 peak unknown, no MFU" % name


def main(argv=None):
    a = parse_args(argv)
    if a.worker:
        torch_worker(a)
        return 0
    import torch
    if a.device == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: torch sees no CUDA device (use --device cpu for a code-path check)", file=sys.stderr)
        return 1
    spec = dict(TINY if a.tiny else GPT2_SMALL)
    if a.batch:
        spec["batch"] = a.batch
    tmp = None
    workdir = a.workdir
    if not workdir:
        tmp = tempfile.TemporaryDirectory(prefix="bench_gpu_")
        workdir = tmp.name
    os.makedirs(workdir, exist_ok=True)
    workdir = os.path.abspath(workdir)

    print("bench_gpu: %s model %d layers x %d wide, %d heads, seq %d, vocab %d, batch %d; device %s; "
          "warm-up %d, timed %d; torch %s" % ("tiny" if a.tiny else "GPT-2-small-shaped", spec["n_layer"], spec["n_embd"],
                                              spec["n_head"], spec["seq"], spec["vocab"], spec["batch"], a.device,
                                              a.warmup, a.steps, torch.__version__))
    n_params, n_dense, info, export_s = prepare(a, spec, workdir)
    print("  exported in %.1fs (%s); %d parameters, %d outside the embeddings" % (export_s, info["exporter"],
                                                                                  n_params, n_dense))
    peak, peak_note = gpu_peak(a)
    print("  " + peak_note)
    flops = flops_per_step(spec, n_dense)
    tokens = spec["batch"] * spec["seq"]

    sides = [("torch_eager", lambda: torch_side(a, workdir, "eager")), ("dsrun", lambda: dsrun_side(a, workdir))]
    if not a.no_compile:
        sides.append(("torch_compile", lambda: torch_side(a, workdir, "compile")))
    results = {}
    for name, fn in sides:
        t0 = time.time()
        r = fn()
        r["wall_s"] = time.time() - t0
        if "step_times" in r:
            timed = r["step_times"][a.warmup:]
            r["median_step_s"] = statistics.median(timed)
            r["tokens_per_s"] = tokens / r["median_step_s"]
            r["tflops"] = flops / r["median_step_s"] / 1e12
            r["mfu"] = flops / r["median_step_s"] / peak if peak else None
        results[name] = r
        print("  %s: %s (%.0fs)" % (name, r.get("error", "ok"), r["wall_s"]))

    print()
    print("%-14s %12s %12s %9s %8s %12s %10s %10s" % ("side", "tokens/s", "ms/step", "TFLOP/s", "MFU",
                                                      "peak MiB", "1st loss", "vs dsrun"))
    base = results.get("dsrun", {}).get("tokens_per_s")
    for name, _ in sides:
        r = results[name]
        if "error" in r:
            print("%-14s unavailable: %s" % (name, r["error"]))
            continue
        mfu = "%.1f%%" % (100 * r["mfu"]) if r.get("mfu") is not None else "n/a"
        mem = "%.0f" % (r["peak_bytes"] / 2**20) if r.get("peak_bytes") else "n/a"
        ratio = "%.2fx" % (r["tokens_per_s"] / base) if base else "n/a"
        print("%-14s %12.0f %12.2f %9.2f %8s %12s %10.4f %10s" % (name, r["tokens_per_s"], 1e3 * r["median_step_s"],
                                                                 r["tflops"], mfu, mem, r["losses"][0], ratio))
    print("(vs dsrun: that side's tokens/s over dsrun's; > 1 means faster than dsrun. FLOPs/step %.3g; "
          "tokens/step %d)" % (flops, tokens))
    e, d = results.get("torch_eager", {}), results.get("dsrun", {})
    if "losses" in e and "losses" in d:
        rel = abs(e["losses"][0] - d["losses"][0]) / max(abs(e["losses"][0]), 1e-12)
        print("first-step loss, dsrun vs torch eager: %.5f vs %.5f (rel %.1e; both bf16, so agreement is "
              "to about 1e-2)" % (d["losses"][0], e["losses"][0], rel))

    if results.get("dsrun", {}).get("profile"):
        print("profile of dsrun's step (--profile): " + results["dsrun"]["profile"])
    if a.json:
        out = {"model": spec, "device": a.device, "peak_note": peak_note, "peak_flops": peak,
               "n_params": n_params, "n_params_dense": n_dense, "flops_per_step": flops, "tokens_per_step": tokens,
               "warmup": a.warmup, "steps": a.steps, "exporter": info["exporter"], "export_s": export_s,
               "torch": torch.__version__, "results": results}
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
        print("wrote " + a.json)
    if tmp:
        tmp.cleanup()
    if "error" in results.get("dsrun", {}):
        return 2
    return 0 if "error" not in results.get("torch_eager", {}) else 1


if __name__ == "__main__":
    sys.exit(main())
