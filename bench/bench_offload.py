#!/usr/bin/python3
"""NVMe offload of optimizer states (offload_optimizer.device "nvme") against the same model without
it: peak resident memory, step time and losses, measured in the same run.

    /usr/bin/python3 bench/bench_offload.py [--layers 8] [--width 512] [--seq 64] [--steps 10]
        [--warmup 2] [--rounds 2] [--nvme-path DIR] [--buffer-count 2] [--build DIR] [--json OUT.json]

Model: export_models.GPT, --layers x --width, 4 heads, sequence --seq, vocab 512, exported on the
fly by this interpreter (Debian's torch 1.13). Batch 8, one micro-batch, AdamW, ZeRO stage 1 on one
rank (DeepSpeed offloads only under ZeRO). The two plans differ only by
"offload_optimizer": {"device": "nvme", "nvme_path": DIR, "buffer_count": N, "pipeline_read": true,
"pipeline_write": true}; DIR (default: a folder under the system's temporary directory, on the
local disk here) takes the swap file. dsrun runs each with --threads 1, the two alternating
--rounds times; the step time is the median step_time_s after the warm-up steps of every round, the
peak resident memory dsrun's peak_resident_bytes (VmHWM) at the last step. Targets (issue 17):
peak RSS lower by at least 80% of the optimizer-state bytes, identical losses; the step-time
overhead is printed. Exit status 1 when a target is missed.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ab_runs  # noqa: E402
from ab_runs import BATCH, REPO, run  # noqa: E402

TOOLS = os.path.join(REPO, "build", "tools")  # --build DIR: DIR/tools


def compile_plan(model_dir, offload, args, tmp):
    cfg = {"train_batch_size": BATCH, "optimizer": {"type": "AdamW", "params": {"lr": 1e-3, "weight_decay": 0.01}},
           "zero_optimization": {"stage": 1}}
    if offload:
        cfg["zero_optimization"]["offload_optimizer"] = {
            "device": "nvme", "nvme_path": args.nvme_path, "buffer_count": args.buffer_count,
            "pipeline_read": True, "pipeline_write": True}
    tag = "nvme" if offload else "plain"
    cfg_path, plan = os.path.join(tmp, tag + ".json"), os.path.join(tmp, tag + ".dsplan")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    run([os.path.join(TOOLS, "dscompile"), os.path.join(model_dir, "gpt.onnx"), "--config", cfg_path, "-q", "-o", plan])
    return plan, json.loads(run([os.path.join(TOOLS, "dsinspect"), "--json", plan]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--buffer-count", type=int, default=2)
    ap.add_argument("--nvme-path", help="the swap file's folder (default: under the temporary directory)")
    ap.add_argument("--build", help="the build folder whose tools/ to run (default: build)")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    global TOOLS
    if args.build:
        TOOLS = os.path.join(os.path.abspath(args.build), "tools")
    ab_runs.check_tools(TOOLS)
    with tempfile.TemporaryDirectory() as tmp:
        args.nvme_path = args.nvme_path or os.path.join(tmp, "nvme")
        model_dir = ab_runs.export_gpt(args.layers, args.width, args.seq, tmp)
        sides = {}
        for offload in (False, True):
            plan, summary = compile_plan(model_dir, offload, args, tmp)
            sides[offload] = {"plan": plan, "summary": summary}
        ab_runs.alternate(TOOLS, sides, model_dir, args, tmp)
    plain, nvme = sides[False], sides[True]
    ms = {k: 1e3 * statistics.median(sides[k]["times"]) for k in sides}
    states = plain["summary"]["memory"]["optimizer_states"]
    places, moved = nvme["summary"]["memory"]["places"], nvme["summary"]["memory"]["moved_per_step"]
    saved = plain["peak"] - nvme["peak"]
    fraction = saved / states
    overhead = ms[True] / ms[False] - 1
    same = plain["losses"] == nvme["losses"]
    print(f"model: GPT {args.layers} layers x {args.width}, seq {args.seq}, batch {BATCH}, ZeRO 1 on one rank; median of "
          f"{args.rounds} x {args.steps} steps after {args.warmup} warm-up steps each, --threads 1")
    print(f"dsrun: {plain['device']}")
    print(f"optimizer states {states / 2**20:.1f} MiB; with offload: {places['nvme'] / 2**20:.1f} MiB on nvme "
          f"({args.nvme_path}), {moved['nvme_to_device'] / 2**20:.1f} MiB read and "
          f"{moved['device_to_nvme'] / 2**20:.1f} MiB written per step, buffer_count {args.buffer_count}")
    print(f"{'':<22} {'ms/step':>8} {'peak RSS MiB':>13}")
    for k, name in ((False, "without offload"), (True, "nvme offload")):
        print(f"{name:<22} {ms[k]:>8.2f} {sides[k]['peak'] / 2**20:>13.1f}")
    print(f"peak RSS lower by {saved / 2**20:.1f} MiB = {fraction:.2f} of the optimizer-state bytes (target >= 0.8); "
          f"step time overhead {100 * overhead:+.1f}%; losses {'identical' if same else 'DIFFER'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ms": {"plain": ms[False], "nvme": ms[True]}, "optimizer_state_bytes": states,
                       "peak_resident": {"plain": plain["peak"], "nvme": nvme["peak"]}, "fraction": fraction,
                       "overhead": overhead, "same_losses": same}, f, indent=1)
    ok = fraction >= 0.8 and same
    print("PASS" if ok else "MISS")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
