#!/usr/bin/python3
"""NVMe offload of optimizer states (offload_optimizer.device "nvme") and of parameters
(offload_param.device "nvme") against the same model without it: peak resident memory, step time
and losses, measured in the same run.

    /usr/bin/python3 bench/bench_offload.py [--layers 8] [--width 512] [--seq 64] [--steps 10]
        [--warmup 2] [--rounds 2] [--nvme-path DIR] [--buffer-count 2] [--param-buffer-count 4]
        [--precision fp32|fp16|bf16] [--build DIR] [--json OUT.json]

Model: export_models.GPT, --layers x --width, 4 heads, sequence --seq, vocab 512, exported on the
fly by this interpreter (Debian's torch 1.13). Batch 8, one micro-batch, AdamW, one rank. Two pairs
of plans, each differing only by its offload section; DIR (default: a folder under the system's
temporary directory, on the local disk here) takes the swap files:
- ZeRO 1 (DeepSpeed offloads the optimizer only under ZeRO) without and with "offload_optimizer":
  {"device": "nvme", "nvme_path": DIR, "buffer_count": N, "pipeline_read": true, "pipeline_write":
  true}. --precision fp16 or bf16 adds that section ({"enabled": true}): the fp32 master weights
  then swap with the optimizer states, as in DeepSpeed.
- ZeRO 3 (every parameter chunked: stage3_param_persistence_threshold 0; one parameter per gather
  bucket: stage3_prefetch_bucket_size 1) without and with "offload_param": {"device": "nvme",
  "nvme_path": DIR, "buffer_count": --param-buffer-count, "max_in_cpu": 0}.
dsrun runs each with --threads 1, the four alternating --rounds times; the step time is the median
step_time_s after the warm-up steps of every round, the peak resident memory dsrun's
peak_resident_bytes (VmHWM) at the last step. Targets (issue 17): for each pair, peak RSS lower by
at least 80% of the swapped bytes (dsinspect's places.nvme), identical losses; the step-time
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


def compile_plan(model_dir, tag, args, tmp):
    """tag: "plain1"/"opt" (ZeRO 1 without/with optimizer offload), "plain3"/"param" (ZeRO 3
    without/with parameter offload)."""
    stage = 3 if tag in ("plain3", "param") else 1
    cfg = {"train_batch_size": BATCH, "optimizer": {"type": "AdamW", "params": {"lr": 1e-3, "weight_decay": 0.01}},
           "zero_optimization": {"stage": stage}}
    if stage == 3:
        cfg["zero_optimization"].update({"stage3_param_persistence_threshold": 0, "stage3_prefetch_bucket_size": 1})
    if args.precision != "fp32":
        cfg[args.precision] = {"enabled": True}
    if tag == "opt":
        cfg["zero_optimization"]["offload_optimizer"] = {
            "device": "nvme", "nvme_path": args.nvme_path, "buffer_count": args.buffer_count,
            "pipeline_read": True, "pipeline_write": True}
    if tag == "param":
        cfg["zero_optimization"]["offload_param"] = {
            "device": "nvme", "nvme_path": args.nvme_path, "buffer_count": args.param_buffer_count, "max_in_cpu": 0}
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
    ap.add_argument("--param-buffer-count", type=int, default=4)
    ap.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32")
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
        for tag in ("plain1", "opt", "plain3", "param"):
            plan, summary = compile_plan(model_dir, tag, args, tmp)
            sides[tag] = {"plan": plan, "summary": summary}
        ab_runs.alternate(TOOLS, sides, model_dir, args, tmp)
    ms = {k: 1e3 * statistics.median(sides[k]["times"]) for k in sides}
    print(f"model: GPT {args.layers} layers x {args.width}, seq {args.seq}, batch {BATCH}, {args.precision}, one rank; "
          f"median of {args.rounds} x {args.steps} steps after {args.warmup} warm-up steps each, --threads 1")
    print(f"dsrun: {sides['plain1']['device']}")
    figures, ok = {"precision": args.precision}, True
    print(f"{'':<40} {'ms/step':>8} {'peak RSS MiB':>13}")
    # Each offload against the same stage without it: (offloaded side, its baseline, what it swaps).
    for tag, base, what in (("opt", "plain1", "optimizer states and master weights, ZeRO 1"),
                            ("param", "plain3", "parameter chunks, ZeRO 3")):
        plain, nvme = sides[base], sides[tag]
        places, moved = nvme["summary"]["memory"]["places"], nvme["summary"]["memory"]["moved_per_step"]
        swapped = places["nvme"]
        saved = plain["peak"] - nvme["peak"]
        fraction = saved / swapped
        overhead = ms[tag] / ms[base] - 1
        same = plain["losses"] == nvme["losses"]
        print(f"{'ZeRO ' + base[-1] + ' without offload':<40} {ms[base]:>8.2f} {plain['peak'] / 2**20:>13.1f}")
        print(f"{'nvme offload of the ' + tag + ' side':<40} {ms[tag]:>8.2f} {nvme['peak'] / 2**20:>13.1f}")
        print(f"  {what}: {swapped / 2**20:.1f} MiB on nvme ({args.nvme_path}), "
              f"{moved['nvme_to_device'] / 2**20:.1f} MiB read and {moved['device_to_nvme'] / 2**20:.1f} MiB written "
              f"per step")
        print(f"  peak RSS lower by {saved / 2**20:.1f} MiB = {fraction:.2f} of the swapped bytes (target >= 0.8); "
              f"step time overhead {100 * overhead:+.1f}%; losses {'identical' if same else 'DIFFER'}")
        figures[tag] = {"ms": {"plain": ms[base], "nvme": ms[tag]}, "swapped_bytes": swapped,
                        "moved_per_step": moved, "peak_resident": {"plain": plain["peak"], "nvme": nvme["peak"]},
                        "fraction": fraction, "overhead": overhead, "same_losses": same}
        ok = ok and fraction >= 0.8 and same
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    print("PASS" if ok else "MISS")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
