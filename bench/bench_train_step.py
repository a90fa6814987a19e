#!/usr/bin/python3
"""Benchmark one fp32 training step (forward + backward + clip + AdamW): dsrun against PyTorch.

    /usr/bin/python3 bench/bench_train_step.py [--torch-python VENV/bin/python ...]
        [--threads T] [--warmup W] [--steps K] [--models gpt,gpt_large,resnet18] [--json OUT.json]

Models: the bundled `gpt` (models/gpt); `gpt_large` (export_models.GPT with 4 layers x 256 wide,
4 heads, sequence 128, vocab 512); `resnet18` (torchvision resnet18(num_classes=10) + cross-entropy,
3x32x32 images, 256 random images with random labels).  gpt_large and resnet18 are
exported on the fly into a temp dir by this interpreter (Debian's torch 1.13 and onnx: opset 17,
dynamic batch, the settings of models/export_models.py).  All sides start from the same weights
(the ONNX initializers, saved once as .npz for the PyTorch peers) and train on the same batches
(no shuffle): batch 16 = micro 16 x gas 1, AdamW lr 1e-3 weight_decay 0.01, gradient_clipping 1.0,
at T threads.  Warm-up/timed steps default per model: gpt 30/100 (its step is ~2 ms, and a
BLAS's thread pool needs a while after process start), gpt_large and resnet18 3/10.

Peers, each in its own process (bench/torch_peer.py), with OMP/MKL/OPENBLAS_NUM_THREADS=T set
before it starts and torch.set_num_threads(T):
  * this interpreter's torch (Debian's 1.13 under /usr/bin/python3), eager;
  * every --torch-python PY (e.g. a venv with PyTorch 2.x from PyPI), in each of --modes
    (default eager,compile; compile = torch.compile(module) with inductor, optimizer eager).
Each reports the libraries it ran (BLAS_INFO, MKL and oneDNN versions, loaded BLAS libraries and
OpenBLAS kernel set, CPU capability, threads) and its torch.mm sgemm GFLOP/s.
dsrun:  BUILD/tools/dscompile MODEL --config CFG -o PLAN --flops, then
        BUILD/tools/dsrun PLAN --data DIR --steps W+K --no-shuffle --metrics M.jsonl --threads T;
        median of the metrics' "step_time_s" over the K steps after the W warm-up steps.
FLOPs per step: gpt models 6 x params x tokens (tokens = batch x sequence; forward 2PT + backward
4PT, leaving out attention score/value matmuls and elementwise work); resnet18 the static count
of `dscompile --flops` (per optimizer step, all programs), since 6PT means nothing for a
convolution network.  Throughput is given as GFLOP/s and as a fraction of the sgemm peak: the
best float32 N^3 (N=2048) GEMM rate at T threads of numpy's BLAS, dsrun's OpenBLAS (through
ctypes) and each peer's torch.mm.
Times: median ms per step; (x.xx) = that side's time / the fastest PyTorch peer's.

Exit status: 0 when dsrun and every peer ran; 2 when dsrun is unavailable or failed (the PyTorch
numbers are still printed, followed by a "dsrun unavailable: <reason>" line); 3 when a peer
failed (its error is printed; e.g. torch.compile without a working C++ compiler); 1 otherwise.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import torch_peer  # bench/, beside this script: the PyTorch side, run by every peer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(REPO, "models")
PEER = os.path.join(REPO, "bench", "torch_peer.py")

BATCH = 16
GPT_LARGE = dict(vocab_size=512, block_size=128, n_layer=4, n_embd=256, n_head=4)
RESNET_HW = 32
ALL_MODELS = ("gpt", "gpt_large", "resnet18")
# (warm-up, timed) steps per model when --warmup/--steps are not given.
DEFAULT_STEPS = {"gpt": (30, 100), "gpt_large": (3, 10), "resnet18": (3, 10)}
BENCH_CONFIG = {
    "train_batch_size": BATCH,
    "train_micro_batch_size_per_gpu": BATCH,
    "gradient_accumulation_steps": 1,
    "gradient_clipping": 1.0,
    "steps_per_print": 1000000,
    "optimizer": {"type": "AdamW", "params": {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8,
                                              "weight_decay": 0.01}},
}


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="threads for every side (default: os.cpu_count() = %(default)s)")
    ap.add_argument("--warmup", type=int,
                    help="warm-up steps for every model (default per model: gpt 30, others 3)")
    ap.add_argument("--steps", type=int,
                    help="timed steps for every model (default per model: gpt 100, others 10)")
    ap.add_argument("--models", default=",".join(ALL_MODELS),
                    help="comma list of %s (default: all)" % ", ".join(ALL_MODELS))
    ap.add_argument("--torch-python", action="append", default=[], metavar="PY",
                    help="another Python with torch (and torchvision, numpy, onnx) to compare "
                         "with, e.g. a venv with PyTorch 2.x from PyPI; repeatable")
    ap.add_argument("--modes", default="eager,compile",
                    help="modes for each --torch-python peer: eager, compile (default both)")
    ap.add_argument("--no-system-torch", action="store_true",
                    help="leave out this interpreter's torch as a peer")
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build"),
                    help="where tools/dscompile and tools/dsrun are (default: build/)")
    ap.add_argument("--sgemm-n", type=int, default=2048, help="sgemm peak matrix size")
    ap.add_argument("--no-torch-foreach", action="store_true",
                    help="PyTorch AdamW with its per-parameter loop instead of foreach kernels")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (prints its path)")
    ap.add_argument("--json", help="also write the results as JSON here")
    ap.add_argument("--timeout", type=float, default=1200,
                    help="seconds per dscompile/dsrun/peer process (default %(default)s; "
                         "torch.compile of resnet18 on 2 busy cores takes minutes)")
    a = ap.parse_args(argv)
    if a.threads < 1 or (a.warmup is not None and a.warmup < 0) or \
            (a.steps is not None and a.steps < 1):
        ap.error("need --threads >= 1, --warmup >= 0, --steps >= 1")
    a.models = [m for m in a.models.split(",") if m]
    bad = [m for m in a.models if m not in ALL_MODELS]
    if bad or not a.models:
        ap.error("unknown model(s) %s (known: %s)" % (bad, ", ".join(ALL_MODELS)))
    a.modes = [m for m in a.modes.split(",") if m]
    bad = [m for m in a.modes if m not in ("eager", "compile")]
    if bad or not a.modes:
        ap.error("--modes: unknown mode(s) %s (eager, compile)" % bad)
    for py in a.torch_python:
        if not os.access(py, os.X_OK):
            ap.error("--torch-python %s is not an executable" % py)
    if a.no_system_torch and not a.torch_python:
        ap.error("--no-system-torch needs a --torch-python peer")
    return a


def thread_env(t):
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(t)
    return env


def loaded_blas():
    """Shared libraries of this process that look like BLAS/LAPACK (resolved paths)."""
    return torch_peer.loaded_libraries(words=("blas", "lapack", "mkl", "blis"))


def set_blas_threads(t):
    """openblas_set_num_threads(t) on every loaded OpenBLAS (env vars already cover fresh loads)."""
    import ctypes
    done = []
    for p in loaded_blas():
        try:
            lib = ctypes.CDLL(p)
            fn = getattr(lib, "openblas_set_num_threads", None)
            if fn is not None:
                fn(ctypes.c_int(t))
                done.append(p)
        except OSError:
            pass
    return done


def openblas_kernels(path, prefix=""):
    """(config, corename) of the OpenBLAS at path, or None when it is not one."""
    import ctypes
    try:
        lib = ctypes.CDLL(path)
        config = getattr(lib, prefix + "openblas_get_config")
        core = getattr(lib, prefix + "openblas_get_corename")
    except (OSError, AttributeError):
        return None
    config.restype = core.restype = ctypes.c_char_p
    return config().decode(), core().decode()


def blas_description(np):
    libs = loaded_blas()
    parts = []
    for p in libs:
        k = openblas_kernels(p) if "openblas" in os.path.basename(p) else None
        parts.append(p if k is None else "%s (%s, %s kernels)" % (p, k[0].split(" DYNAMIC")[0], k[1]))
    desc = ", ".join(parts) if parts else "unknown"
    try:
        import threadpoolctl  # optional
        info = threadpoolctl.threadpool_info()
        desc = "; ".join("%s %s (%s, %s threads)" % (i.get("internal_api"), i.get("version"),
                                                      i.get("filepath"), i.get("num_threads"))
                         for i in info if i.get("user_api") == "blas") or desc
    except ImportError:
        pass
    return desc



def dsrun_blas_library(build_dir):
    """(path, symbol prefix) of the OpenBLAS dsrun links, from ldd; None when not found."""
    dsrun = os.path.join(build_dir, "tools", "dsrun")
    try:
        out = subprocess.run(["ldd", dsrun], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             universal_newlines=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "=>" and "blas" in parts[0]:
            return parts[2], ("scipy_" if "scipy_openblas" in parts[0] else "")
    return None


def sgemm_peak_openblas(np, path, prefix, n, t):
    """Best GFLOP/s of the OpenBLAS at path (cblas_sgemm through ctypes), float32 n^3."""
    import ctypes
    lib = ctypes.CDLL(path)
    getattr(lib, prefix + "openblas_set_num_threads")(ctypes.c_int(t))
    sgemm = getattr(lib, prefix + "cblas_sgemm")
    a = np.random.RandomState(0).standard_normal((n, n)).astype(np.float32)
    b = np.random.RandomState(1).standard_normal((n, n)).astype(np.float32)
    c = np.empty((n, n), np.float32)
    fp = ctypes.POINTER(ctypes.c_float)
    row_major, no_trans = 101, 111

    def run():
        sgemm(row_major, no_trans, no_trans, n, n, n, ctypes.c_float(1.0), a.ctypes.data_as(fp), n,
              b.ctypes.data_as(fp), n, ctypes.c_float(0.0), c.ctypes.data_as(fp), n)
    run()
    times = []
    budget = time.perf_counter() + 10.0
    for i in range(7):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
        if i >= 2 and time.perf_counter() > budget:
            break
    if not np.allclose(c[:4, :4], a[:4] @ b[:, :4], rtol=1e-3, atol=1e-2):
        raise RuntimeError("%s sgemm through ctypes gave wrong numbers" % path)
    return 2.0 * n ** 3 / min(times) / 1e9


def sgemm_peak(np, n, t):
    a = np.random.RandomState(0).standard_normal((n, n)).astype(np.float32)
    b = np.random.RandomState(1).standard_normal((n, n)).astype(np.float32)
    c = a @ b  # warm-up (thread pool start)
    times = []
    budget = time.perf_counter() + 10.0
    for i in range(7):
        t0 = time.perf_counter()
        c = a @ b
        times.append(time.perf_counter() - t0)
        if i >= 2 and time.perf_counter() > budget:
            break
    del c
    best = min(times)
    return 2.0 * n ** 3 / best / 1e9, statistics.median(times)



# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------

def save_initial_weights(onnx_path, out_npz):
    """The ONNX initializers (named like the module's state_dict) as one .npz for the peers."""
    import numpy as np
    import onnx
    import onnx.numpy_helper
    m = onnx.load(onnx_path)
    np.savez(out_npz, **{i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer})
    init = {i.name for i in m.graph.initializer}
    return [i.name for i in m.graph.input if i.name not in init]


def prepare_models(names, tmp, torch, E):
    """{name: dir, module spec, weights .npz, graph inputs, tokens per step} for every model."""
    import warnings
    import numpy as np
    out = {}
    for name in names:
        if name == "gpt":
            d = os.path.join(MODELS, "gpt")
            spec, tokens = {"class": "GPT", "kwargs": {}}, BATCH * 16
        else:
            if name == "gpt_large":
                spec = {"class": "GPT", "kwargs": GPT_LARGE}
                torch.manual_seed(0)
                model = E.GPT(**GPT_LARGE)
                data = E.data_gpt(256, seed=7, vocab=GPT_LARGE["vocab_size"],
                                  seq=GPT_LARGE["block_size"])
                tokens = BATCH * GPT_LARGE["block_size"]
            else:
                spec = {"class": "ResNet18Loss", "kwargs": {"num_classes": 10}}
                try:
                    cls = torch_peer.resnet18_loss_class()
                except ImportError as e:
                    raise SystemExit("resnet18 is torchvision's: %s has none (%s; on Debian: "
                                     "apt install python3-torchvision)" % (sys.executable, e))
                torch.manual_seed(0)
                model = cls(num_classes=10)
                # Random images and labels: nothing to learn in 13 steps of 16 unseen samples, so
                # the loss stays near ln 10 and its relative difference means something (on
                # learnable data it falls to ~0.01 within ten steps and rounding dominates).
                rs = np.random.RandomState(11)
                data = {"x": rs.standard_normal((256, 3, RESNET_HW, RESNET_HW)).astype(np.float32),
                        "y": rs.randint(0, 10, size=256).astype(np.int64)}
                tokens = BATCH  # images
            d = os.path.join(tmp, name)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                E.export_one(name, model, data, tmp, ref=False, verbose=False)
        weights = os.path.join(tmp, name + ".weights.npz")
        inputs = save_initial_weights(os.path.join(d, name + ".onnx"), weights)
        out[name] = {"dir": d, "module": spec, "weights": weights, "inputs": inputs,
                     "tokens": tokens}
    return out


# --------------------------------------------------------------------------
# PyTorch peers
# --------------------------------------------------------------------------

class Unavailable(Exception):
    pass


def _tail(text, n=400):
    text = (text or "").strip().replace("\n", " | ")
    return text[-n:]


def run_peer(py, mode, m, warmup, steps, a, work, tag, sgemm_n):
    """Result dict of bench/torch_peer.py under py; {"error": ...} when it failed."""
    job = {"module": m["module"], "weights": m["weights"], "data": os.path.join(m["dir"], "data"),
           "inputs": m["inputs"], "config": BENCH_CONFIG, "batch": BATCH, "threads": a.threads,
           "warmup": warmup, "steps": steps, "mode": mode, "foreach": not a.no_torch_foreach,
           "sgemm_n": sgemm_n}
    job_path = os.path.join(work, "peer_%s.job.json" % tag)
    out_path = os.path.join(work, "peer_%s.result.json" % tag)
    with open(job_path, "w") as f:
        json.dump(job, f)
    try:
        p = subprocess.run([py, PEER, "--job", job_path, "--out", out_path], env=thread_env(a.threads),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=a.timeout)
    except subprocess.TimeoutExpired:
        return {"error": "timed out after %gs" % a.timeout}
    if p.returncode != 0 or not os.path.exists(out_path):
        return {"error": "exited %d: %s" % (p.returncode, _tail(p.stderr, 1500) or _tail(p.stdout))}
    with open(out_path) as f:
        return json.load(f)


def peer_label(res, py, mode):
    ver = (res.get("peer") or {}).get("torch")
    if ver is None:
        return "%s %s" % (py, mode)
    return "torch %s %s" % (ver.split("+")[0], mode)


# --------------------------------------------------------------------------
# dsrun side
# --------------------------------------------------------------------------

def bench_dsrun(model_dir, cfg_path, work, warmup, steps, threads, build_dir, timeout):
    dscompile = os.path.join(build_dir, "tools", "dscompile")
    dsrun = os.path.join(build_dir, "tools", "dsrun")
    for exe in (dscompile, dsrun):
        if not os.access(exe, os.X_OK):
            raise Unavailable("%s not built (scripts/build.sh)" % os.path.relpath(exe, REPO))
    name = os.path.basename(os.path.normpath(model_dir))
    onnx_path = os.path.join(model_dir, name + ".onnx")
    plan = os.path.join(work, name + ".plan")
    metrics = os.path.join(work, name + ".metrics.jsonl")
    env = thread_env(threads)

    def run(cmd, what):
        try:
            p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               universal_newlines=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Unavailable("%s timed out after %gs: %s" % (what, timeout, " ".join(cmd)))
        if p.returncode != 0:
            raise Unavailable("%s exited %d: %s" % (what, p.returncode,
                                                   _tail(p.stderr) or _tail(p.stdout)))
        return p

    p = run([dscompile, onnx_path, "--config", cfg_path, "-o", plan, "--flops"], "dscompile")
    # "per optimizer step: 46.94MFLOP (46937346)", backend/flops.h's FormatStaticFlops
    fm = re.search(r"^per optimizer step: \S+ \((\d+)\)", p.stdout, re.M)
    static_flops = float(fm.group(1)) if fm else None
    total = warmup + steps
    p = run([dsrun, plan, "--data", os.path.join(model_dir, "data"), "--steps", str(total),
             "--no-shuffle", "--metrics", metrics, "--threads", str(threads)], "dsrun")
    device = next((ln[len("dsrun: device "):] for ln in p.stderr.splitlines()
                   if ln.startswith("dsrun: device ")), "unknown (no \"dsrun: device\" line)")
    rows = {}
    try:
        with open(metrics) as f:
            for line in f:
                line = line.strip()
                if line:
                    obj = json.loads(line)
                    if isinstance(obj, dict) and "step" in obj:
                        rows[int(obj["step"])] = obj
    except (OSError, ValueError) as e:
        raise Unavailable("cannot read dsrun metrics %s: %s" % (metrics, e))
    timed = [rows[s] for s in range(warmup + 1, total + 1) if s in rows]
    if len(timed) < steps:
        raise Unavailable("dsrun metrics hold %d of the %d timed steps" % (len(timed), steps))
    if any("step_time_s" not in r for r in timed):
        raise Unavailable("dsrun metrics lines lack \"step_time_s\"")
    losses = [rows[s].get("loss") for s in range(1, total + 1) if s in rows]
    return {"step_s": statistics.median(float(r["step_time_s"]) for r in timed),
            "losses": losses, "device": device, "static_flops": static_flops}


def max_rel_diff(xs, ref):
    pairs = [(float(x), float(y)) for x, y in zip(xs, ref) if x is not None and y is not None]
    if not pairs:
        return None
    return max(abs(x - y) / max(abs(y), 1e-12) for x, y in pairs)


# --------------------------------------------------------------------------

def main(argv=None):
    a = parse_args(argv)
    # Thread counts must be in the environment before numpy / torch load their BLAS.
    os.environ.update({k: v for k, v in thread_env(a.threads).items()
                       if k.endswith("_NUM_THREADS")})
    import numpy as np
    import torch
    sys.path.insert(0, MODELS)
    import export_models as E

    torch.set_num_threads(a.threads)
    set_blas_threads(a.threads)
    peers = [] if a.no_system_torch else [(sys.executable, "eager")]
    for py in a.torch_python:
        peers += [(py, mode) for mode in a.modes]
    tmp = tempfile.mkdtemp(prefix="dsc_bench_")
    try:
        cfg_path = os.path.join(tmp, "bench_config.json")
        with open(cfg_path, "w") as f:
            json.dump(BENCH_CONFIG, f, indent=1)
        models = prepare_models(a.models, tmp, torch, E)
        set_blas_threads(a.threads)
        numpy_peak, _ = sgemm_peak(np, a.sgemm_n, a.threads)
        numpy_blas = blas_description(np)  # before dsrun's OpenBLAS joins this process
        dsrun_lib = dsrun_blas_library(a.build_dir)
        dsrun_peak = None
        if dsrun_lib is not None:
            dsrun_peak = sgemm_peak_openblas(np, dsrun_lib[0], dsrun_lib[1], a.sgemm_n, a.threads)

        labels = []          # column order: peers as they are first seen, then dsrun
        peer_info = {}       # label -> what the peer reported about its libraries
        peer_sgemm = {}      # label -> torch.mm GFLOP/s
        peer_errors = []
        measured_sgemm = set()
        results = []
        reason = None
        dsrun_device = None
        for name in a.models:
            m = models[name]
            warmup, steps = DEFAULT_STEPS[name]
            warmup = a.warmup if a.warmup is not None else warmup
            steps = a.steps if a.steps is not None else steps
            row = {"model": name, "threads": a.threads, "warmup": warmup, "steps": steps,
                   "tokens": m["tokens"], "params": None, "sides": {}}
            for i, (py, mode) in enumerate(peers):
                sg = 0 if py in measured_sgemm else a.sgemm_n
                res = run_peer(py, mode, m, warmup, steps, a, tmp, "%s_%d" % (name, i), sg)
                label = peer_label(res, py, mode)
                if label not in labels:
                    labels.append(label)
                if res.get("peer"):
                    peer_info.setdefault(label.rsplit(" ", 1)[0], res["peer"])
                if res.get("sgemm_gflops"):
                    measured_sgemm.add(py)
                    peer_sgemm[label.rsplit(" ", 1)[0]] = res["sgemm_gflops"]
                side = {"ms": None, "losses": None, "error": res.get("error")}
                if "error" in res:
                    peer_errors.append("%s on %s: %s" % (label, name, res["error"]))
                else:
                    row["params"] = res["params"]
                    side.update({"ms": res["step_s"] * 1e3, "losses": res["losses"],
                                 "compile_s": res.get("compile_s")})
                row["sides"][label] = side
            if reason is None:
                try:
                    dr = bench_dsrun(m["dir"], cfg_path, tmp, warmup, steps, a.threads,
                                     a.build_dir, a.timeout)
                    dsrun_device = dr["device"]
                    row["static_flops"] = dr["static_flops"]
                    row["sides"]["dsrun"] = {"ms": dr["step_s"] * 1e3, "losses": dr["losses"]}
                except Unavailable as e:
                    reason = str(e)
            results.append(row)
        labels.append("dsrun")

        peak = max([numpy_peak, dsrun_peak or 0.0] + list(peer_sgemm.values()))
        for row in results:
            if row["model"] == "resnet18":
                row["flops_per_step"] = row.get("static_flops")
                row["flops_rule"] = "dscompile --flops (static count)"
            elif row["params"] is not None:
                row["flops_per_step"] = 6.0 * row["params"] * row["tokens"]
                row["flops_rule"] = "6 x params x tokens"
            else:
                row["flops_per_step"] = None
            peer_ms = [(s["ms"], lb) for lb, s in row["sides"].items()
                       if lb != "dsrun" and s["ms"] is not None]
            best = min(peer_ms) if peer_ms else None
            row["fastest_peer"] = best[1] if best else None
            # Reference trajectory: the first eager peer that ran (a compiled one otherwise).
            cands = [lb for lb, s in row["sides"].items() if lb != "dsrun" and s["losses"]]
            row["loss_reference"] = next((lb for lb in cands if lb.endswith(" eager")),
                                         cands[0] if cands else None)
            ref = row["sides"][row["loss_reference"]]["losses"] if cands else None
            for lb, s in row["sides"].items():
                if s["ms"] is None:
                    continue
                s["ratio_to_fastest_peer"] = s["ms"] / best[0] if best else None
                if row["flops_per_step"]:
                    s["gflops"] = row["flops_per_step"] / (s["ms"] * 1e-3) / 1e9
                    s["peak_fraction"] = s["gflops"] / peak
                if ref is not None:
                    s["loss_first_rel_diff"] = max_rel_diff(s["losses"][:1], ref[:1])
                    s["loss_max_rel_diff"] = max_rel_diff(s["losses"], ref)

        print("machine: %d CPUs (os.cpu_count), threads %d; numpy %s"
              % (os.cpu_count() or 0, a.threads, np.__version__))
        for lib, info in peer_info.items():
            print("%s: %s" % (lib, info.get("summary", "?")))
        print("dsrun: %s" % (dsrun_device or "- (dsrun did not run)"))
        print("numpy (this interpreter): %s" % numpy_blas)
        print("sgemm float32 %d^3, %d threads, best of runs, GFLOP/s: numpy %.1f; "
              "dsrun's OpenBLAS %s; %s; peak %.1f"
              % (a.sgemm_n, a.threads, numpy_peak,
                 "-" if dsrun_peak is None else "%.1f" % dsrun_peak,
                 "; ".join("%s torch.mm %.1f" % kv for kv in peer_sgemm.items()) or "no peer",
                 peak))
        print("step = zero_grad + forward + backward + clip_grad_norm(1.0) + AdamW, batch %d; "
              "median ms; (x) = ms / fastest PyTorch peer's ms" % BATCH)

        def f(v, fmt):
            return "-" if v is None else fmt % v
        w = max(16, max(len(lb) for lb in labels) + 1)
        hdr = "%-10s %-7s %10s" % ("model", "steps", "params") + \
            "".join("%*s" % (w, lb) for lb in labels) + "%20s" % "dsrun loss Δrel"
        print(hdr)
        print("-" * len(hdr))
        for r in results:
            cells = []
            for lb in labels:
                s = r["sides"].get(lb)
                if s is None or s["ms"] is None:
                    cells.append("%*s" % (w, "failed" if s is not None else "-"))
                else:
                    cells.append("%*s" % (w, "%.2f (%s)" % (s["ms"], f(s.get("ratio_to_fastest_peer"), "%.2f"))))
            d = r["sides"].get("dsrun", {})
            print("%-10s %-7s %10s" % (r["model"], "%d+%d" % (r["warmup"], r["steps"]),
                                       f(r["params"], "%d")) + "".join(cells) +
                  "%20s" % ("%s / %s" % (f(d.get("loss_first_rel_diff"), "%.0e"),
                                         f(d.get("loss_max_rel_diff"), "%.0e"))))
        print("throughput, GFLOP/s (%% of the %.0f GFLOP/s sgemm peak):" % peak)
        hdr = "%-10s %-34s" % ("model", "FLOPs/step") + "".join("%*s" % (w, lb) for lb in labels)
        print(hdr)
        print("-" * len(hdr))
        for r in results:
            fl = r["flops_per_step"]
            cells = []
            for lb in labels:
                s = r["sides"].get(lb) or {}
                g = s.get("gflops")
                cells.append("%*s" % (w, "-" if g is None else "%.1f (%.0f%%)" % (g, 100 * s["peak_fraction"])))
            print("%-10s %-34s" % (r["model"], "-" if fl is None else "%.3g %s" % (fl, r["flops_rule"]))
                  + "".join(cells))
        print("loss Δrel = relative difference of the loss at step 1 / the largest over all steps, "
              "against the first eager PyTorch peer; every side's:")
        for r in results:
            print("  %-10s vs %s: %s" % (r["model"], r["loss_reference"] or "-", ", ".join(
                "%s %s / %s" % (lb, f(s.get("loss_first_rel_diff"), "%.0e"),
                                f(s.get("loss_max_rel_diff"), "%.0e"))
                for lb, s in r["sides"].items() if s.get("ms") is not None)))
            comp = ["%s %.1f s" % (lb, s["compile_s"]) for lb, s in r["sides"].items()
                    if s.get("compile_s")]
            if comp:
                print("  %-10s first step with compilation: %s" % (r["model"], ", ".join(comp)))
        for e in peer_errors:
            print("peer failed: %s" % e)
        if a.json:
            with open(a.json, "w") as fh:
                json.dump({"sgemm_peak_gflops": peak, "sgemm_numpy_gflops": numpy_peak,
                           "sgemm_dsrun_blas_gflops": dsrun_peak, "sgemm_peer_gflops": peer_sgemm,
                           "numpy_blas": numpy_blas, "peers": peer_info,
                           "dsrun_device": dsrun_device, "columns": labels,
                           "config": BENCH_CONFIG, "dsrun_unavailable": reason,
                           "peer_errors": peer_errors, "results": results}, fh, indent=1)
        if reason is not None:
            print("dsrun unavailable: %s" % reason)
            return 2
        return 3 if peer_errors else 0
    finally:
        if a.keep:
            print("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
