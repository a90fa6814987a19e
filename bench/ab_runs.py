"""What bench_remat.py and bench_offload.py share: one GPT exported on the fly, and dsrun runs of
two plans of it alternating round by round, so that load on the machine falls on both sides."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 8


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stdout}{r.stderr}")
    return r.stdout + r.stderr


def check_tools(tools):
    for tool in ("dscompile", "dsrun", "dsinspect"):
        if not os.path.exists(os.path.join(tools, tool)):
            sys.exit(f"{tool} is not built: run scripts/build.sh first")


def export_gpt(layers, width, seq, tmp):
    """models/export_models.py's GPT (vocabulary 512, 4 heads) with 4 batches of data; its folder."""
    sys.path.insert(0, os.path.join(REPO, "models"))
    import warnings
    import torch
    import export_models as E
    torch.manual_seed(0)
    model = E.GPT(vocab_size=512, block_size=seq, n_layer=layers, n_embd=width, n_head=4)
    data = E.data_gpt(4 * BATCH, seed=7, vocab=512, seq=seq)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        E.export_one("gpt", model, data, tmp, ref=False, verbose=False)
    return os.path.join(tmp, "gpt")


def train(tools, plan, model_dir, warmup, steps, metrics):
    """One dsrun of warmup + steps steps on one thread: (step times after the warm-up, every loss,
    the largest rank's peak resident bytes, the OpenBLAS kernel line dsrun prints)."""
    out = run([os.path.join(tools, "dsrun"), plan, "--data", os.path.join(model_dir, "data"), "--threads", "1",
               "--steps", str(warmup + steps), "--no-shuffle", "--metrics", metrics])
    device = next((l.strip() for l in out.splitlines() if "OpenBLAS" in l), "")
    lines = [json.loads(l) for l in open(metrics)]
    peak = lines[-1].get("peak_resident_bytes")
    peak = max(peak) if isinstance(peak, list) else peak
    return [l["step_time_s"] for l in lines[warmup:]], [l["loss"] for l in lines], peak, device


def alternate(tools, sides, model_dir, args, tmp):
    """Runs each side's "plan" args.rounds times, the sides alternating; adds to each side its
    "times" (all rounds), "losses" and "device" (the last round's) and "peak" (the largest)."""
    for s in sides.values():
        s.update(times=[], peak=0)
    for r in range(args.rounds):
        for key, s in sides.items():
            times, losses, peak, device = train(tools, s["plan"], model_dir, args.warmup, args.steps,
                                                os.path.join(tmp, f"{key}-{r}.jsonl"))
            s["times"] += times
            s["losses"], s["device"] = losses, device
            s["peak"] = max(s["peak"], peak or 0)
