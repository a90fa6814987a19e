#!/usr/bin/python3
"""Benchmark one fp32 training step (forward + backward + clip + AdamW): dsrun against PyTorch eager.

    /usr/bin/python3 bench/bench_train_step.py [--threads T] [--warmup W] [--steps K]
                                               [--models gpt,gpt_large] [--json OUT.json]

Models: the bundled `gpt` (models/gpt) and `gpt_large` (export_models.GPT with 4 layers x 256 wide,
4 heads, sequence 128, vocab 512; exported on the fly into a temp dir with synthetic data, opset 17,
dynamic batch, same export settings as the bundled models).  Both sides train the same ONNX
initial weights on the same batches (no shuffle), batch 16 = micro 16 x gas 1, AdamW lr 1e-3
weight_decay 0.01, gradient_clipping 1.0 (DeepSpeed's default), at T threads.

PyTorch: torch.set_num_threads(T) (and OMP/OPENBLAS_NUM_THREADS=T, set before torch is imported);
median wall time of K steps after W warm-up steps.
dsrun:   build/tools/dscompile MODEL --config CFG -o PLAN, then
         build/tools/dsrun PLAN --data DIR --steps W+K --no-shuffle --metrics M.jsonl --threads T;
         median of the metrics' "step_time_s" over the K steps after the W warm-up steps.
FLOPs per step are estimated as 6 x params x tokens (tokens = batch x sequence; the usual
dense-transformer estimate, forward 2PT + backward 4PT, leaving out the attention score/value
matmuls and all elementwise work), reported as GFLOP/s and as a fraction of the machine's sgemm
peak measured here: the faster of numpy's BLAS and dsrun's (the OpenBLAS dsrun links, called
through ctypes), float32 N^3, N=2048, same thread count.
BLAS: each side's library and kernel set is printed: PyTorch's from the libraries loaded in this
process (OpenBLAS's openblas_get_corename(), threadpoolctl when installed, torch's build config),
dsrun's from its startup line "dsrun: device cpu (OpenBLAS ..., <core> kernels, T threads)".

Exit status: 0 when both sides ran, 2 when dsrun is unavailable or failed (the PyTorch numbers
are still printed, followed by a "dsrun unavailable: <reason>" line), 1 on other errors.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(REPO, "models")

BATCH = 16
GPT_LARGE = dict(vocab_size=512, block_size=128, n_layer=4, n_embd=256, n_head=4)
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
                    help="threads for both sides (default: os.cpu_count() = %(default)s)")
    ap.add_argument("--warmup", type=int, default=3, help="warm-up steps (default 3)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    ap.add_argument("--models", default="gpt,gpt_large", help="comma list of gpt, gpt_large")
    ap.add_argument("--build-dir", default=os.path.join(REPO, "build"),
                    help="where tools/dscompile and tools/dsrun are (default: build/)")
    ap.add_argument("--sgemm-n", type=int, default=2048, help="sgemm peak matrix size")
    ap.add_argument("--no-torch-foreach", action="store_true",
                    help="PyTorch AdamW with its per-parameter loop instead of foreach kernels")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (prints its path)")
    ap.add_argument("--json", help="also write the results as JSON here")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per dscompile/dsrun call")
    a = ap.parse_args(argv)
    if a.threads < 1 or a.warmup < 0 or a.steps < 1:
        ap.error("need --threads >= 1, --warmup >= 0, --steps >= 1")
    return a


def thread_env(t):
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(t)
    return env


def loaded_blas():
    """Shared libraries of this process that look like BLAS/LAPACK (resolved paths)."""
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6:
                    p = parts[5]
                    base = os.path.basename(p).lower()
                    if any(s in base for s in ("blas", "lapack", "mkl", "blis")) and ".so" in base:
                        libs.add(os.path.realpath(p))
    except OSError:
        pass
    return sorted(libs)


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


def torch_blas(torch):
    """What torch was built to use for GEMMs and convolutions (from its build config)."""
    import re
    cfg = torch.__config__.show()
    info = ["%s=%s" % kv for kv in re.findall(r"\b(BLAS_INFO|LAPACK_INFO)=([^,\s]+)", cfg)]
    dnn = re.search(r"MKL-DNN (v[\d.]+)|oneDNN (v[\d.]+)", cfg)
    return "%s; oneDNN %s" % (", ".join(info) or "BLAS_INFO unknown",
                              (dnn.group(1) or dnn.group(2)) if dnn and torch.backends.mkldnn.is_available()
                              else "not available")


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

def prepare_models(names, tmp, torch, E):
    out = {}
    for name in names:
        if name == "gpt":
            out[name] = {"dir": os.path.join(MODELS, "gpt"), "seq": 16}
        elif name == "gpt_large":
            d = os.path.join(tmp, "gpt_large")
            torch.manual_seed(0)
            model = E.GPT(**GPT_LARGE)
            data = E.data_gpt(256, seed=7, vocab=GPT_LARGE["vocab_size"],
                              seq=GPT_LARGE["block_size"])
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                E.export_one("gpt_large", model, data, tmp, ref=False, verbose=False)
            with open(os.path.join(d, "module.json"), "w") as f:
                json.dump({"class": "GPT", "kwargs": GPT_LARGE}, f)
            out[name] = {"dir": d, "seq": GPT_LARGE["block_size"]}
        else:
            raise SystemExit("unknown model %r (gpt, gpt_large)" % name)
    return out


# --------------------------------------------------------------------------
# PyTorch side
# --------------------------------------------------------------------------

def bench_torch(model_dir, warmup, steps, torch, R, foreach):
    _, module, in_names, data = R.load_model(model_dir)
    module.train()
    params = [p for p in module.parameters() if p.requires_grad]
    nparams = sum(p.numel() for p in params)
    o = BENCH_CONFIG["optimizer"]["params"]
    opt = torch.optim.AdamW(params, lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"],
                            weight_decay=o["weight_decay"], foreach=foreach)
    tensors = {k: torch.from_numpy(v) for k, v in data.items()}
    n = next(iter(data.values())).shape[0]
    spe = n // BATCH
    times, losses = [], []
    for k in range(warmup + steps):
        s = (k % spe) * BATCH
        batch = [tensors[nm][s:s + BATCH] for nm in in_names]
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = module(*batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, BENCH_CONFIG["gradient_clipping"])
        opt.step()
        lv = loss.item()
        times.append(time.perf_counter() - t0)
        losses.append(lv)
    return {"params": nparams, "step_s": statistics.median(times[warmup:]),
            "losses": losses}


# --------------------------------------------------------------------------
# dsrun side
# --------------------------------------------------------------------------

class Unavailable(Exception):
    pass


def _tail(text, n=400):
    text = (text or "").strip().replace("\n", " | ")
    return text[-n:]


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

    run([dscompile, onnx_path, "--config", cfg_path, "-o", plan], "dscompile")
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
            "losses": losses, "device": device}


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
    import reference_trajectories as R

    torch.set_num_threads(a.threads)
    set_blas_threads(a.threads)
    names = [m for m in a.models.split(",") if m]
    tmp = tempfile.mkdtemp(prefix="dsc_bench_")
    try:
        cfg_path = os.path.join(tmp, "bench_config.json")
        with open(cfg_path, "w") as f:
            json.dump(BENCH_CONFIG, f, indent=1)
        models = prepare_models(names, tmp, torch, E)
        set_blas_threads(a.threads)
        numpy_peak, _ = sgemm_peak(np, a.sgemm_n, a.threads)
        torch_blas_desc = blas_description(np)  # before dsrun's OpenBLAS joins this process
        dsrun_lib = dsrun_blas_library(a.build_dir)
        dsrun_peak = None
        if dsrun_lib is not None:
            dsrun_peak = sgemm_peak_openblas(np, dsrun_lib[0], dsrun_lib[1], a.sgemm_n, a.threads)
        peak = max(numpy_peak, dsrun_peak or 0.0)
        results = []
        reason = None
        dsrun_device = None
        for name in names:
            m = models[name]
            tr = bench_torch(m["dir"], a.warmup, a.steps, torch, R, not a.no_torch_foreach)
            tokens = BATCH * m["seq"]
            flops = 6.0 * tr["params"] * tokens
            row = {"model": name, "params": tr["params"], "threads": a.threads,
                   "tokens": tokens, "flops_per_step": flops,
                   "torch_ms": tr["step_s"] * 1e3, "torch_gflops": flops / tr["step_s"] / 1e9,
                   "dsrun_ms": None, "dsrun_gflops": None, "ratio": None,
                   "loss_max_rel_diff": None}
            if reason is None:
                try:
                    dr = bench_dsrun(m["dir"], cfg_path, tmp, a.warmup, a.steps, a.threads,
                                     a.build_dir, a.timeout)
                    row["dsrun_ms"] = dr["step_s"] * 1e3
                    dsrun_device = dr["device"]
                    row["dsrun_gflops"] = flops / dr["step_s"] / 1e9
                    row["ratio"] = dr["step_s"] / tr["step_s"]
                    pairs = [(float(x), y) for x, y in zip(dr["losses"], tr["losses"])
                             if x is not None]
                    if pairs:
                        row["loss_max_rel_diff"] = max(abs(x - y) / max(abs(y), 1e-12)
                                                       for x, y in pairs)
                except Unavailable as e:
                    reason = str(e)
            results.append(row)

        print("machine: %d CPUs (os.cpu_count), threads %d; torch %s; numpy %s"
              % (os.cpu_count() or 0, a.threads, torch.__version__, np.__version__))
        print("torch BLAS: %s (numpy and torch share the process); torch build: %s"
              % (torch_blas_desc, torch_blas(torch)))
        print("dsrun BLAS: %s" % (dsrun_device or "- (dsrun did not run)"))
        print("sgemm float32 %d^3, %d threads, best of runs: numpy %.1f GFLOP/s, dsrun's OpenBLAS %s; "
              "peak %.1f GFLOP/s" % (a.sgemm_n, a.threads, numpy_peak,
                                     "-" if dsrun_peak is None else "%.1f GFLOP/s" % dsrun_peak, peak))
        print("FLOPs/step = 6 x params x tokens (tokens = batch %d x sequence; attention "
              "score/value matmuls and elementwise work not counted)" % BATCH)
        print("step = zero_grad + forward + backward + clip_grad_norm(1.0) + AdamW; median of "
              "%d steps after %d warm-up" % (a.steps, a.warmup))
        hdr = ("%-10s %10s %7s %10s %10s %8s %12s %12s %9s"
               % ("model", "params", "threads", "torch ms", "dsrun ms", "ratio",
                  "torch GF/s", "dsrun GF/s", "loss Δrel"))
        print(hdr)
        print("-" * len(hdr))

        def f(v, fmt):
            return "-" if v is None else fmt % v
        for r in results:
            print("%-10s %10d %7d %10.2f %10s %8s %7.1f (%2.0f%%) %12s %9s"
                  % (r["model"], r["params"], r["threads"], r["torch_ms"],
                     f(r["dsrun_ms"], "%.2f"), f(r["ratio"], "%.3f"), r["torch_gflops"],
                     100.0 * r["torch_gflops"] / peak,
                     f(r["dsrun_gflops"], "%.1f") + (
                         "" if r["dsrun_gflops"] is None
                         else " (%2.0f%%)" % (100.0 * r["dsrun_gflops"] / peak)),
                     f(r["loss_max_rel_diff"], "%.1e")))
        print("ratio = dsrun ms / torch ms (< 1: dsrun faster); (%) = fraction of sgemm peak")
        if a.json:
            with open(a.json, "w") as fh:
                json.dump({"sgemm_peak_gflops": peak, "sgemm_numpy_gflops": numpy_peak,
                           "sgemm_dsrun_blas_gflops": dsrun_peak, "blas": torch_blas_desc,
                           "torch_build": torch_blas(torch), "dsrun_device": dsrun_device,
                           "warmup": a.warmup, "steps": a.steps, "config": BENCH_CONFIG,
                           "dsrun_unavailable": reason, "results": results}, fh, indent=1)
        if reason is not None:
            print("dsrun unavailable: %s" % reason)
            return 2
        return 0
    finally:
        if a.keep:
            print("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
