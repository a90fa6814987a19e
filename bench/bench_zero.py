#!/usr/bin/python3
"""ZeRO communication at 2 CPU ranks: buckets and overlap against per-tensor synchronous
collectives and against one rank, with collective counts and bytes next to the times.

    /usr/bin/python3 bench/bench_zero.py [--layers 8] [--steps 40] [--warmup 5]
        [--baseline-build OLD_BUILD] [--json OUT.json]

Model: export_models.GPT with --layers layers x 64 wide, 4 heads, sequence 32, vocab 256
(8 layers: 101 parameter tensors, ~420k parameters: many small tensors), exported on the fly
by this interpreter (Debian's torch 1.13). Batch: train_batch_size 16, micro-batch 4 (gradient
accumulation 4 at one rank, 2 at two), Adam with weight decay, gradient_clipping 1.0, no shuffle.

Runs (median step_time_s of dsrun's metrics after the warm-up steps):
  * "1 rank": the plain single-rank plan with --threads 1 (one core), the reference, and with
    --threads 2 (both cores) for information;
  * "2 x 1 rank": two single-rank runs of half the batch at once (one core each, no
    communication): what sharing the machine costs by itself, the floor of the 2-rank runs;
  * for ZeRO stages 2 and 3 at 2 ranks (--nproc 2 --threads 1: one core each):
      - "per-tensor sync": reduce_bucket_size, allgather_bucket_size and
        stage3_prefetch_bucket_size 1 and overlap_comm false: one synchronous collective per
        tensor, today's plan shape;
      - "buckets": reduce_bucket_size / prefetch --bucket elements (default 1e5), overlap_comm true;
      - "defaults": DeepSpeed's defaults (5e8-element reduce buckets, overlap_comm as DeepSpeed
        resolves it, 5e7 prefetch);
      - with --baseline-build DIR: the same stage compiled and run by DIR/tools/{dscompile,dsrun}
        (e.g. a build of the commit before buckets), which has one synchronous collective per
        parameter whatever the config says.
Same global batch everywhere; "per sample" = 2 x (2-rank step time) / (1-rank 1-thread step
time): each rank's time per sample of its half of the batch against one rank's time per sample on
one core (1.00 is perfect data-parallel scaling on the two cores). "calls" = collectives per optimizer step, planned (dsinspect
--json communication.collectives.total) / measured (the metrics' "collectives"); "sent" = bytes one
rank sent per step (plan / measured). Both sides use the same dsrun and its OpenBLAS, whose
kernel set dsrun prints in its device line (shown).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(REPO, "build")
BATCH, MICRO = 16, 4


def run(cmd, env=None):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stdout}{r.stderr}")
    return r.stdout + r.stderr


def export_model(layers, width, tmp):
    sys.path.insert(0, os.path.join(REPO, "models"))
    import warnings
    import torch
    import export_models as E
    torch.manual_seed(0)
    model = E.GPT(vocab_size=256, block_size=32, n_layer=layers, n_embd=width, n_head=4)
    data = E.data_gpt(256, seed=7, vocab=256, seq=32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        E.export_one("gpt", model, data, tmp, ref=False, verbose=False)
    return os.path.join(tmp, "gpt")


def config(world, zero):
    return {"train_batch_size": BATCH, "train_micro_batch_size_per_gpu": MICRO,
            "gradient_accumulation_steps": BATCH // (MICRO * world), "gradient_clipping": 1.0,
            "optimizer": {"type": "Adam", "params": {"lr": 1e-3, "weight_decay": 0.01}},
            "zero_optimization": zero}


def compile_plan(tools, model_dir, cfg, world, tmp, tag):
    """tmp/TAG.dsplan compiled from the model with this config for `world` ranks."""
    cfg_path, plan = os.path.join(tmp, tag + ".json"), os.path.join(tmp, tag + ".dsplan")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    run([os.path.join(tools, "dscompile"), os.path.join(model_dir, "gpt.onnx"), "--config", cfg_path,
         "--world-size", str(world), "-q", "-o", plan])
    return plan


def measure(build, model_dir, cfg, world, threads, args, tmp, tag):
    tools = os.path.join(build, "tools")
    plan = compile_plan(tools, model_dir, cfg, world, tmp, tag)
    metrics = os.path.join(tmp, tag + ".jsonl")
    summary = json.loads(run([os.path.join(tools, "dsinspect"), "--json", plan]))
    out = run([os.path.join(tools, "dsrun"), plan, "--nproc", str(world), "--data", os.path.join(model_dir, "data"),
               "--steps", str(args.warmup + args.steps), "--no-shuffle", "--threads", str(threads),
               "--metrics", metrics])
    device = next((l.strip() for l in out.splitlines() if "OpenBLAS" in l), "")
    lines = [json.loads(l) for l in open(metrics)]
    timed = lines[args.warmup:]
    comm = summary.get("communication", {})
    planned = summary["collectives"]["total"] if "collectives" in summary else None
    measured = [sum(l.get("collectives", {}).values()) for l in timed] if "collectives" in timed[-1] else None
    return {"tag": tag, "ms": 1e3 * statistics.median(l["step_time_s"] for l in timed),
            "calls_plan": planned, "calls_run": statistics.median(measured) if measured else None,
            "sent_plan": comm.get("total"), "sent_run": sum(timed[-1].get("bytes_sent", {}).values()),
            "loss": [l["loss"] for l in lines], "device": device,
            "gathered_peak": timed[-1].get("gathered_peak")}


def measure_pair(model_dir, args, tmp):
    """Two single-rank runs of half the batch at once, one core each: the two cores' contention
    without any communication (the floor for the 2-rank runs)."""
    tools = os.path.join(BUILD, "tools")
    cfg = config(1, {"stage": 0})
    cfg["train_batch_size"] = BATCH // 2
    cfg["gradient_accumulation_steps"] = BATCH // (2 * MICRO)
    plan = compile_plan(tools, model_dir, cfg, 1, tmp, "pair")
    procs, files = [], []
    for i in range(2):
        files.append(os.path.join(tmp, f"pair{i}.jsonl"))
        procs.append(subprocess.Popen([os.path.join(tools, "dsrun"), plan, "--data", os.path.join(model_dir, "data"),
                                       "--steps", str(args.warmup + args.steps), "--no-shuffle", "-q", "--threads", "1",
                                       "--metrics", files[-1]], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    for p in procs:
        if p.wait() != 0:
            sys.exit("failed: the concurrent single-rank runs: " + p.stderr.read().decode())
    medians = [statistics.median(json.loads(l)["step_time_s"] for l in list(open(f))[args.warmup:]) for f in files]
    return 1e3 * max(medians)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--width", type=int, default=64, help="n_embd (4 heads)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--bucket", type=float, default=1e5, help="reduce/prefetch bucket elements of the 'buckets' runs")
    ap.add_argument("--baseline-build", help="a build directory of an older dscompile to run as 'today's' side")
    ap.add_argument("--json", help="write every result here")
    args = ap.parse_args()
    for tool in ("dscompile", "dsrun", "dsinspect"):
        if not os.path.exists(os.path.join(BUILD, "tools", tool)):
            sys.exit(f"{tool} is not built: run scripts/build.sh first")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = export_model(args.layers, args.width, tmp)
        base = measure(BUILD, model_dir, config(1, {"stage": 0}), 1, 1, args, tmp, "1rank")
        both = measure(BUILD, model_dir, config(1, {"stage": 0}), 1, 2, args, tmp, "1rank-2threads")
        results += [base, both]
        pair_ms = measure_pair(model_dir, args, tmp)
        bucket = int(args.bucket)
        for stage in (2, 3):
            runs = [
                ("per-tensor sync", {"stage": stage, "reduce_bucket_size": 1, "allgather_bucket_size": 1,
                                     "stage3_prefetch_bucket_size": 1, "overlap_comm": False,
                                     "stage3_param_persistence_threshold": 0}),
                ("buckets", {"stage": stage, "reduce_bucket_size": bucket, "allgather_bucket_size": bucket,
                             "stage3_prefetch_bucket_size": bucket, "overlap_comm": True,
                             "stage3_param_persistence_threshold": 0}),
                ("defaults", {"stage": stage, "stage3_param_persistence_threshold": 0}),
            ]
            for name, zero in runs:
                r = measure(BUILD, model_dir, config(2, zero), 2, 1, args, tmp, f"s{stage}-{name.replace(' ', '_')}")
                r.update(stage=stage, name=name)
                results.append(r)
            if args.baseline_build:
                r = measure(args.baseline_build, model_dir, config(2, {"stage": stage,
                                                                       "stage3_param_persistence_threshold": 0}),
                            2, 1, args, tmp, f"s{stage}-baseline")
                r.update(stage=stage, name="baseline build")
                results.append(r)
    print(f"model: GPT {args.layers} layers x {args.width}, batch {BATCH} (micro {MICRO}); median of {args.steps} steps "
          f"after {args.warmup}")
    print(f"dsrun: {base['device']}")
    print(f"1 rank: {base['ms']:.1f} ms/step with 1 thread, {both['ms']:.1f} ms/step with 2 threads")
    print(f"2 x 1 rank at once, half the batch each, no communication: {pair_ms:.1f} ms/step "
          f"(per sample {2 * pair_ms / base['ms']:.2f}: the two cores' contention alone)")
    print("per sample = 2 x (2-rank ms/step) / (1-rank 1-thread ms/step): the time one rank spends per sample of its")
    print("half of the batch against one rank doing the whole batch on one core (1.00 = perfect scaling)")
    print(f"{'stage':>5} {'run':<16} {'ms/step':>8} {'per sample':>10} {'vs sync':>8} {'vs old':>7} "
          f"{'calls plan/run':>15} {'sent/step plan/run':>22} {'max |dloss|':>11}")
    for stage in (2, 3):
        sync = next(r for r in results if r.get("stage") == stage and r["name"] == "per-tensor sync")
        old = next((r for r in results if r.get("stage") == stage and r["name"] == "baseline build"), None)
        for r in (r for r in results if r.get("stage") == stage):
            dloss = max(abs(a - b) for a, b in zip(r["loss"], base["loss"]))
            calls = f"{r['calls_plan']}/{r['calls_run']}" if r["calls_plan"] is not None else "-"
            vs_old = f"{old['ms'] / r['ms']:.2f}x" if old else "-"
            sent = f"{r['sent_plan']}/{r['sent_run']}"
            print(f"{stage:>5} {r['name']:<16} {r['ms']:>8.1f} {2 * r['ms'] / base['ms']:>10.2f} "
                  f"{sync['ms'] / r['ms']:>7.2f}x {vs_old:>7} {calls:>15} {sent:>22} {dloss:>11.1e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
