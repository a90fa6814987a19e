#!/usr/bin/python3
"""Step time, memory and traffic per rank for ZeRO stages 0-3 at 1-4 CPU ranks (dsrun --nproc).

    /usr/bin/python3 bench/bench_zero.py [--model models/gpt] [--steps 12] [--warmup 2]

For every stage and world size it compiles MODEL with models/zero_configs/stage{S}_w{W}.json
(train_batch_size 24, micro-batch 2, accumulation 12/W, Adam, clipping), trains --steps steps with
one thread per rank, and prints the median step time after warm-up, the per-rank model-state
bytes the plan promises (dsinspect --json) next to what dsrun allocated, and the bytes one rank
sent per step (plan vs measured). The peer is the same plan family at world size 1: the ratio
column is step time relative to one rank (on a 2-core machine more ranks oversubscribe the cores,
so this measures overhead, not speed-up).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build", "tools")


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stdout}{r.stderr}")
    return r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "gpt"))
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    name = os.path.basename(os.path.normpath(args.model))
    for tool in ("dscompile", "dsrun", "dsinspect"):
        if not os.path.exists(os.path.join(BUILD, tool)):
            sys.exit(f"{tool} is not built: run scripts/build.sh first")
    print(f"model {name}; {args.steps} steps, median after {args.warmup}; 1 thread per rank; bytes per rank")
    print(f"{'stage':>5} {'ranks':>5} {'ms/step':>8} {'vs 1 rank':>9} {'params B':>10} {'grads B':>10} "
          f"{'optim B':>10} {'sent/step plan':>15} {'measured':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for stage in range(4):
            base_ms = None
            for world in range(1, 5):
                cfg = os.path.join(ROOT, "models", "zero_configs", f"stage{stage}_w{world}.json")
                plan = os.path.join(tmp, f"s{stage}w{world}.dsplan")
                metrics = os.path.join(tmp, f"s{stage}w{world}.jsonl")
                run([os.path.join(BUILD, "dscompile"), os.path.join(args.model, name + ".onnx"), "--config", cfg,
                     "--world-size", str(world), "-q", "-o", plan])
                summary = json.loads(run([os.path.join(BUILD, "dsinspect"), "--json", plan]))
                run([os.path.join(BUILD, "dsrun"), plan, "--nproc", str(world), "--data",
                     os.path.join(args.model, "data"), "--steps", str(args.steps), "--no-shuffle", "-q",
                     "--threads", "1", "--metrics", metrics])
                lines = [json.loads(l) for l in open(metrics)]
                ms = 1e3 * statistics.median(l["step_time_s"] for l in lines[args.warmup:])
                base_ms = base_ms or ms
                mem = summary["memory"]
                plan_sent = summary["communication"]["total"]
                measured = sum(lines[-1].get("bytes_sent", {}).values())
                print(f"{stage:>5} {world:>5} {ms:>8.2f} {ms / base_ms:>9.2f} {mem['parameters']:>10} "
                      f"{mem['gradients']:>10} {mem['optimizer_states']:>10} {plan_sent:>15} {measured:>10}")


if __name__ == "__main__":
    main()
