#!/opt/torchenv/bin/python
"""The bundled gpt trained by DeepSpeed itself: its engine, optimizer wrappers and ZeRO stages on the
CPU accelerator, on one rank and on two. These trajectories check dscompile (tests/e2e/mixed_precision_test.cc
DeepSpeedItself) and the PyTorch references that model DeepSpeed (reference_mixed_precision.py)
against the code they describe.

    PYTHONPATH=<DeepSpeed 0.19.6 checkout> /opt/torchenv/bin/python models/deepspeed_trajectory.py --regenerate
        # rewrites models/gpt/reference/deepspeed/*.json (the RUNS below, 30 steps each; --only NAME...)
    ... models/deepspeed_trajectory.py CONFIG.json [--model models/gpt] [--steps N] [--world N] -o OUT.json

DeepSpeed needs no GPU for this: its CPU accelerator JIT-builds a shared-memory communication op
(a C++ compiler and ninja) and runs FusedAdam's CPU path; torch.distributed uses gloo. The module is
reference_trajectories.load_model's (the ONNX file's initial weights); batches are taken in order,
as dsrun --no-shuffle takes them. The gpt computes cross entropy on its logits; in a bf16 run
DeepSpeed casts the whole module to bf16, so the loss would be a bf16 number. dscompile's precision
pass keeps the loss in fp32 (SoftmaxCrossEntropyLoss is on its fp32 list), and so do these runs: the
module's F.cross_entropy takes logits.float(). The recorded loss of a step is the mean of its
micro-batch losses; grad_norm is engine.get_global_grad_norm() (null where DeepSpeed keeps none:
a bare optimizer at ZeRO 0 in fp32).
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = {  # file stem -> (base config, ZeRO stage, ranks)
    "adam_zero0": ("adam", 0, 1), "adam_zero1": ("adam", 1, 1), "adam_zero2": ("adam", 2, 1),
    "adam_zero3": ("adam", 3, 1),
    "adamw_warmup_decay_zero0": ("adamw_warmup_decay", 0, 1), "adamw_warmup_decay_zero1": ("adamw_warmup_decay", 1, 1),
    "adamw_warmup_decay_zero2": ("adamw_warmup_decay", 2, 1), "adamw_warmup_decay_zero3": ("adamw_warmup_decay", 3, 1),
    "bf16_zero0": ("bf16", 0, 1), "bf16_zero1": ("bf16", 1, 1), "bf16_zero2": ("bf16", 2, 1), "bf16_zero3": ("bf16", 3, 1),
    # Two ranks: each step's 16 samples as 2 micro-batches of 4 per rank, the states partitioned
    # between the ranks, the gradients averaged by DeepSpeed's reduce-scatter or allreduce.
    "adamw_warmup_decay_zero1_world2": ("adamw_warmup_decay", 1, 2),
    "adamw_warmup_decay_zero3_world2": ("adamw_warmup_decay", 3, 2),
    "bf16_zero2_world2": ("bf16", 2, 2), "bf16_zero3_world2": ("bf16", 3, 2),
    # gradient_allreduce_op "sum": the ranks' gradients summed, not averaged (DeepSpeed refuses it at ZeRO 3)
    "adamw_warmup_decay_sum_zero0_world2": ("adamw_warmup_decay_sum", 0, 2),
    "adamw_warmup_decay_sum_zero1_world2": ("adamw_warmup_decay_sum", 1, 2),
    "adamw_warmup_decay_sum_zero2_world2": ("adamw_warmup_decay_sum", 2, 2),
}
# fp32 with what the Adam config leaves out: accumulation, clipping, decoupled decay and a schedule.
ADAMW_WARMUP_DECAY = {
    "train_batch_size": 16, "train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 4,
    "gradient_clipping": 0.5,
    "optimizer": {"type": "AdamW", "params": {"lr": 0.002, "betas": [0.9, 0.95], "weight_decay": 0.1}},
    "scheduler": {"type": "WarmupDecayLR", "params": {"warmup_min_lr": 0.0001, "warmup_max_lr": 0.002,
                                                      "warmup_num_steps": 8, "total_num_steps": 30,
                                                      "warmup_type": "linear"}},
}
STEPS = 30


def run_config(name):
    base, stage, world = RUNS[name]
    if base == "adam":
        with open(os.path.join(HERE, "reference_configs", "adam.json")) as f:
            cfg = json.load(f)
    elif base == "adamw_warmup_decay":
        cfg = ADAMW_WARMUP_DECAY
    elif base == "adamw_warmup_decay_sum":
        cfg = dict(ADAMW_WARMUP_DECAY, gradient_allreduce_op="sum")
    else:  # the config of the PyTorch bf16 reference (AdamW, clipping 0.5, 4 micro-batches of 4)
        with open(os.path.join(HERE, "gpt", "reference", "mixed_precision", "bf16.json")) as f:
            cfg = json.load(f)["config"]
    cfg = dict(cfg, zero_optimization={"stage": stage})
    if world > 1:  # the batch and micro-batch stay; DeepSpeed derives the accumulation for the ranks
        cfg.pop("gradient_accumulation_steps", None)
    return cfg


def train(model_dir, cfg, steps):
    """One rank's run (RANK and WORLD_SIZE from the environment; one rank without them)."""
    for k, v in (("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29533"), ("RANK", "0"), ("WORLD_SIZE", "1"),
                 ("LOCAL_RANK", "0")):
        os.environ.setdefault(k, v)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, HERE)
    import reference_trajectories as R
    import deepspeed

    torch.manual_seed(0)
    torch.set_num_threads(1)
    ce = F.cross_entropy
    F.cross_entropy = lambda logits, target, *a, **k: ce(logits.float(), target, *a, **k)
    try:
        name, module, in_names, data = R.load_model(model_dir)
        tb, mb, gas = R.resolve_batch(cfg, world)
        spe = next(iter(data.values())).shape[0] // tb
        engine, _, _, _ = deepspeed.initialize(model=module, config=dict(cfg, steps_per_print=10**9),
                                               model_parameters=[p for p in module.parameters() if p.requires_grad])
        tensors = {k: torch.from_numpy(v) for k, v in data.items()}
        losses, norms, lrs = [], [], []
        for k in range(steps):
            start = (k % spe) * tb
            micro = []
            for a in range(gas):
                s = start + (a * world + rank) * mb  # dsrun's split: micro-batch a of rank r (runtime/data_loader.h)
                loss = engine(*[tensors[n][s:s + mb] for n in in_names])
                micro.append(float(loss.detach().float()))
                engine.backward(loss)
                lr = engine.get_lr()[0]
                engine.step()
            norm = engine.get_global_grad_norm()
            mean = torch.tensor([sum(micro) / len(micro)], dtype=torch.float64)
            torch.distributed.all_reduce(mean)  # the step's loss: the mean over every rank's micro-batches
            losses.append(float(mean) / world)
            norms.append(None if norm is None else float(norm))
            lrs.append(float(lr))
        return {"model": name, "config": cfg, "steps": steps, "world_size": world,
                "deepspeed": deepspeed.__version__, "torch": torch.__version__,
                "optimizer_wrapper": type(engine.optimizer).__name__,
                "loss_dtype": "float32 (cross entropy on logits.float())",
                "loss": losses, "grad_norm": norms, "lr": lrs}
    finally:
        F.cross_entropy = ce


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("config", nargs="?")
    ap.add_argument("--model", default=os.path.join(HERE, "gpt"))
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--world", type=int, default=1, help="ranks (processes on this machine, gloo)")
    ap.add_argument("-o", "--out")
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--only", nargs="+", choices=sorted(RUNS), help="with --regenerate: just these runs")
    a = ap.parse_args(argv)
    if a.regenerate:
        out_dir = os.path.join(HERE, "gpt", "reference", "deepspeed")
        os.makedirs(out_dir, exist_ok=True)
        # One process per run: DeepSpeed's ZeRO-3 patches torch (its linear) for the rest of a process.
        for name in a.only or RUNS:
            out = os.path.join(out_dir, name + ".json")
            cfg_path = out + ".config.tmp"
            with open(cfg_path, "w") as f:
                json.dump(run_config(name), f)
            try:
                subprocess.run([sys.executable, os.path.abspath(__file__), cfg_path, "-o", out,
                                "--world", str(RUNS[name][2])], check=True)
            finally:
                os.remove(cfg_path)
            with open(out) as f:
                res = json.load(f)
            print("%s: %s, losses %s ..." % (name, res["optimizer_wrapper"], ["%.6f" % x for x in res["loss"][:3]]))
        return 0
    if not a.config or not a.out:
        ap.error("give CONFIG.json and -o OUT.json, or --regenerate")
    with open(a.config) as f:
        cfg = json.load(f)
    if a.world > 1 and "RANK" not in os.environ:  # start the ranks, each this script
        procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__)] + (argv if argv is not None else sys.argv[1:]),
                                  env=dict(os.environ, RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(a.world)))
                 for r in range(a.world)]
        return max(p.wait() for p in procs)
    res = train(a.model, cfg, a.steps)
    if int(os.environ.get("RANK", "0")) == 0:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
