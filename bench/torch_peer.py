"""One PyTorch peer of bench_train_step.py: trains a model for W+K steps in this interpreter.

    PYTHON bench/torch_peer.py --job JOB.json --out RESULT.json

bench_train_step.py runs this file under each PyTorch it compares with (Debian's /usr/bin/python3
with torch 1.13, a venv with PyTorch 2.x from PyPI), once per mode (eager, compile), each in its
own process, so every peer loads its own BLAS/MKL/oneDNN and reports what it ran.  The job file
says which module to build (export_models.GPT with kwargs, or torchvision's resnet18), where its
initial weights are (an .npz written once from the ONNX initializers, the same numbers dsrun
starts from), the data directory (one <input>.npy per graph input, dim 0 = sample), the config,
batch, thread count and steps.  The thread environment (OMP/MKL/OPENBLAS_NUM_THREADS) is set by
the caller before this process starts, so the BLAS thread pools are sized before they load.

The step timed is the same as dsrun's: zero_grad + forward + backward + clip_grad_norm_ + AdamW
(foreach kernels unless the job says otherwise).  mode "compile" wraps the module in
torch.compile (inductor, default options); the optimizer step stays eager (foreach), the way
torch.compile is usually applied to a training loop.  The first compiled step includes the
compilation; its time is reported separately as compile_s and it is one of the warm-up steps.
"""

import argparse
import json
import os
import re
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def resnet18_loss_class():
    """torchvision's resnet18 with a cross-entropy head: forward(x, y) -> scalar loss."""
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision

    class ResNet18Loss(nn.Module):
        def __init__(self, num_classes=10):
            super().__init__()
            self.net = torchvision.models.resnet18(num_classes=num_classes)

        def forward(self, x, y):
            return F.cross_entropy(self.net(x), y)
    return ResNet18Loss


def build_module(spec):
    cls = spec["class"]
    kwargs = spec.get("kwargs", {})
    if cls == "ResNet18Loss":
        return resnet18_loss_class()(**kwargs)
    if cls == "GPT":
        sys.path.insert(0, os.path.join(REPO, "models"))
        try:
            import export_models as E
        except ImportError as e:
            raise SystemExit("torch_peer: the GPT class lives in models/export_models.py, which "
                             "imports onnx; install onnx in this interpreter (%s): %s"
                             % (sys.executable, e))
        return E.GPT(**kwargs)
    raise SystemExit("torch_peer: unknown module class %r" % cls)


def load_weights(module, npz_path):
    """Every state_dict entry from the .npz (names = ONNX initializer names), checked both ways."""
    import numpy as np
    import torch
    w = np.load(npz_path)
    sd = module.state_dict()
    extra = [k for k in w.files if k not in sd]
    # num_batches_tracked is dropped by the ONNX exporter (unused with BatchNorm momentum).
    absent = [k for k in sd if k not in w.files and not k.endswith("num_batches_tracked")]
    if extra or absent:
        raise SystemExit("torch_peer: weights %s do not match the module: not in the module %s, "
                         "not in the file %s" % (npz_path, extra, absent))
    new = {}
    for k, v in sd.items():
        if k in w.files:
            a = w[k]
            if tuple(a.shape) != tuple(v.shape):
                raise SystemExit("torch_peer: %s has shape %s in %s, %s in the module"
                                 % (k, list(a.shape), npz_path, list(v.shape)))
            new[k] = torch.from_numpy(np.array(a)).to(v.dtype)
        else:
            new[k] = v
    module.load_state_dict(new, strict=True)


def loaded_libraries(words=("blas", "lapack", "mkl", "blis", "dnnl", "gomp", "iomp")):
    libs = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6:
                    base = os.path.basename(parts[5]).lower()
                    if ".so" in base and any(s in base for s in words):
                        libs.add(os.path.realpath(parts[5]))
    except OSError:
        pass
    return sorted(libs)


def openblas_corename(path):
    import ctypes
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return None
    for prefix in ("", "scipy_"):
        core = getattr(lib, prefix + "openblas_get_corename", None)
        config = getattr(lib, prefix + "openblas_get_config", None)
        if core is not None and config is not None:
            core.restype = config.restype = ctypes.c_char_p
            return "%s, %s kernels" % (config().decode().split(" DYNAMIC")[0], core().decode())
    return None


def describe(torch):
    """Which GEMM/convolution libraries this torch was built with and loaded, and its threads."""
    cfg = torch.__config__.show()
    keep = []
    for line in cfg.splitlines():
        s = line.strip().lstrip("- ").strip()
        if re.search(r"Math Kernel Library|MKL-DNN|oneDNN|OpenMP|CPU capability", s):
            keep.append(s)
    build = dict(re.findall(r"\b(BLAS_INFO|LAPACK_INFO|USE_MKL|USE_MKLDNN|USE_OPENMP)=([^,\s]+)",
                            cfg))
    libs = []
    for p in loaded_libraries():
        k = openblas_corename(p) if "openblas" in os.path.basename(p).lower() else None
        libs.append(p if k is None else "%s (%s)" % (p, k))
    cap = None
    cpu = getattr(torch.backends, "cpu", None)
    if cpu is not None and hasattr(cpu, "get_cpu_capability"):
        cap = cpu.get_cpu_capability()
    mkl = getattr(torch.backends, "mkl", None)
    par = torch.__config__.parallel_info()
    return {
        "torch": torch.__version__,
        "python": sys.executable,
        "build": build,
        "config_lines": keep,
        "mkl_available": bool(mkl is not None and mkl.is_available()),
        "mkldnn_available": bool(torch.backends.mkldnn.is_available()),
        "mkldnn_enabled": bool(torch.backends.mkldnn.enabled),
        "cpu_capability": cap,
        "threads": torch.get_num_threads(),
        "parallel_backend": next((ln.split(":", 1)[1].strip() for ln in par.splitlines()
                                  if ln.startswith("ATen parallel backend")), None),
        "loaded_libraries": libs,
    }


def summary(d):
    """One line: library versions that decide GEMM/conv speed, the capability, the threads."""
    parts = []
    b = d["build"]
    if "BLAS_INFO" in b:
        parts.append("BLAS_INFO=%s" % b["BLAS_INFO"])
    for s in d["config_lines"]:
        m = re.search(r"Math Kernel Library Version ([\d.]+)", s)
        if m:
            parts.append("MKL %s" % m.group(1))
        m = re.search(r"(?:MKL-DNN|oneDNN) \(?(v[\d.]+)", s)
        if m:
            parts.append("oneDNN %s%s" % (m.group(1), "" if d["mkldnn_available"] else " (off)"))
    if not d["mkl_available"]:
        parts.append("no MKL")
    # CUDA libraries (cuBLAS) load with a CUDA wheel but play no part on the CPU.
    blas = [p for p in d["loaded_libraries"] if re.search(r"blas|mkl", os.path.basename(p), re.I)
            and not os.path.basename(p).lower().startswith("libcu")]
    if blas:
        parts.append("loaded: " + ", ".join(blas))
    if d["cpu_capability"]:
        parts.append("capability %s" % d["cpu_capability"])
    parts.append("%d thread%s (%s)" % (d["threads"], "" if d["threads"] == 1 else "s",
                                       d["parallel_backend"] or "?"))
    return "; ".join(parts)


def sgemm_gflops(torch, n):
    """Best GFLOP/s of torch.mm on float32 n x n, the peak this peer's BLAS reaches here."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g)
    b = torch.randn(n, n, generator=g)
    c = torch.mm(a, b)
    times = []
    budget = time.perf_counter() + 10.0
    for i in range(7):
        t0 = time.perf_counter()
        c = torch.mm(a, b)
        times.append(time.perf_counter() - t0)
        if i >= 2 and time.perf_counter() > budget:
            break
    del c
    return 2.0 * n ** 3 / min(times) / 1e9


def run(job):
    import numpy as np
    import torch
    torch.set_num_threads(job["threads"])
    info = describe(torch)
    info["summary"] = summary(info)
    result = {"peer": info, "mode": job["mode"]}
    if job["mode"] == "compile" and not hasattr(torch, "compile"):
        result["error"] = "torch %s has no torch.compile" % torch.__version__
        return result
    module = build_module(job["module"])
    load_weights(module, job["weights"])
    module.train()
    params = [p for p in module.parameters() if p.requires_grad]
    o = job["config"]["optimizer"]["params"]
    opt = torch.optim.AdamW(params, lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"],
                            weight_decay=o["weight_decay"], foreach=job["foreach"])
    clip = job["config"]["gradient_clipping"]
    data = {k: torch.from_numpy(np.load(os.path.join(job["data"], k + ".npy")))
            for k in job["inputs"]}
    n = next(iter(data.values())).shape[0]
    batch = job["batch"]
    spe = n // batch
    fwd = module
    if job["mode"] == "compile":
        fwd = torch.compile(module)
    times, losses = [], []
    total = job["warmup"] + job["steps"]
    try:
        for k in range(total):
            s = (k % spe) * batch
            xs = [data[nm][s:s + batch] for nm in job["inputs"]]
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = fwd(*xs)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
            lv = loss.item()
            times.append(time.perf_counter() - t0)
            losses.append(lv)
    except Exception as e:  # inductor needs a working C++ toolchain; say why it failed
        msg = "%s: %s" % (type(e).__name__, e)
        result["error"] = "step %d failed: %s" % (len(times) + 1, msg.strip()[-1500:])
        return result
    result.update({"params": sum(p.numel() for p in params),
                   "step_s": statistics.median(times[job["warmup"]:]),
                   "step_times_s": times, "losses": losses,
                   "sgemm_gflops": sgemm_gflops(torch, job["sgemm_n"]) if job["sgemm_n"] else None})
    if job["mode"] == "compile":
        result["compile_s"] = times[0]
    return result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--job", required=True, help="job JSON written by bench_train_step.py")
    ap.add_argument("--out", required=True, help="where to write the result JSON")
    a = ap.parse_args(argv)
    with open(a.job) as f:
        job = json.load(f)
    res = run(job)
    with open(a.out, "w") as f:
        json.dump(res, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
