#!/usr/bin/env python3
"""Generates DeepSpeed config cases by executing DeepSpeed's own code on generated inputs.

What it is for: dscompile reimplements DeepSpeed's config semantics (batch resolution, ZeRO/fp16/bf16
sections, the optimizer wrapper choice, LR schedules, loss scaling, elasticity).  DeepSpeed's unit
tests give a few hundred fixed cases (shared/deepspeed/cases-public.json).  This script draws many
more inputs at random (seeded, so the output is reproducible) and records, for each, what DeepSpeed
itself computes: it imports DeepSpeed and calls the functions named in each case's "note".  Nothing
of DeepSpeed is copied here; where DeepSpeed needs a GPU, a distributed backend or an optimizer
object, the script supplies a minimal stand-in and says so in the note.

The output has exactly the schema of cases-public.json (config-reference.md section 14) and is read
by tests/config/config_cases_test.cc: the repository's copy, tests/config/cases/
deepspeed_generated_cases.json, runs as the "gen_*" cases; a fresh file named by DSC_EXTRA_CASES
runs as "extra_*".

How to run (DeepSpeed 0.19.6, commit edaa7221267243c7be7fb49c5d5f5c4fb97b4641, with torch and
pydantic 2 importable):

    PYTHONPATH=<deepspeed checkout> python tests/config/generate_deepspeed_cases.py [-o FILE] [--seed N]

The script refuses to run against any other DeepSpeed: it checks version.txt (when the checkout has
one) and the git blob hash of every DeepSpeed source file whose code computes an expectation.
"""

import argparse
import contextlib
import copy
import hashlib
import json
import logging
import math
import os
import random
import types
import unittest.mock as mock

import numpy as np

DS_VERSION = "0.19.6"
DS_COMMIT = "edaa7221267243c7be7fb49c5d5f5c4fb97b4641"
# git blob ids (git rev-parse edaa722:<path>) of the files whose code computes the expectations.
PINNED_BLOBS = {
    "deepspeed/runtime/lr_schedules.py": "96f25f4c05d0deb02ce5a394b3fe1500eeb0751f",
    "deepspeed/runtime/config.py": "6f3d16d78cfbc7e9bd077e4e0e493d000db5a839",
    "deepspeed/runtime/config_utils.py": "cf8a593cfba9b4d0df2903c948e0c368c7ecbfb8",
    "deepspeed/runtime/constants.py": "08a355c4bcdebe13a92262c254bfcdd078eaf73f",
    "deepspeed/runtime/precision_config.py": "775f2c4a1e6b81c0fdf41559bb71d585bfd9008b",
    "deepspeed/runtime/zero/config.py": "445ef80ea787972d6f8de5bbac8f51db7c774c49",
    "deepspeed/runtime/zero/offload_config.py": "a71398e4929f84db4be10df1f8c13aaf9cf7ecca",
    "deepspeed/runtime/zero/utils.py": "627c2070875e91be47552c4884a2c529ef8b5953",
    "deepspeed/runtime/zero/leaf_module_config.py": "e225801b5c44dfa0dc6c49c06d4683939e8329f1",
    "deepspeed/runtime/zenflow/zenflow_config.py": "9482961d642da102349ae85fdd2a39baca1b2698",
    "deepspeed/compile/config.py": "0a4709faf019b7fd0eec1f04a76d3b159d0696c3",
    "deepspeed/runtime/fp16/loss_scaler.py": "01fd9bd8431970dc3a918fd7bcc58dc7b78f91d5",
    "deepspeed/runtime/fp16/fused_optimizer.py": "09815d2c035c762ab4d1d2abc4a49bf5d6873714",
    "deepspeed/runtime/fp16/unfused_optimizer.py": "3a7995aa8bfbb33533505e240260de24a1e91a80",
    "deepspeed/runtime/engine.py": "971d73a82a6343789b1beb8e03655742df58c1ba",
    "deepspeed/elasticity/elasticity.py": "045e74d3723dd51d6587c8301f63a497cf429cb9",
    "deepspeed/elasticity/config.py": "7c6bd42cdfd93e7979e942d3b353e55744b356d4",
    "deepspeed/elasticity/constants.py": "b3134c54b4d6a127a04b9f633a51226b6713be20",
}
VERSION_TXT_BLOB = "68d0e0ab6a7d1b1943efdd726a83e4a62b3014cc"

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases", "deepspeed_generated_cases.json")

# Filled by main() once DeepSpeed is imported.
torch = None
ds = None
E = None  # deepspeed.runtime.engine
lr_schedules = None
DeepSpeedConfig = None
compute_elastic_config = None
loss_scaler = None
FP16_Optimizer = None
FP16_UnfusedOptimizer = None
pydantic = None


def git_blob_sha(path):
    with open(path, "rb") as f:
        data = f.read()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def import_and_pin_deepspeed():
    """Imports DeepSpeed and asserts it is 0.19.6 at commit edaa722."""
    global torch, ds, E, lr_schedules, DeepSpeedConfig, compute_elastic_config, loss_scaler
    global FP16_Optimizer, FP16_UnfusedOptimizer, pydantic
    import torch as _torch
    _torch.set_num_threads(1)
    import deepspeed as _ds
    pkg = os.path.dirname(os.path.abspath(_ds.__file__))
    root = os.path.dirname(pkg)
    version_txt = os.path.join(root, "version.txt")
    if os.path.exists(version_txt):
        with open(version_txt) as f:
            version = f.read().strip()
        assert version == DS_VERSION, f"{version_txt} says {version}, expected {DS_VERSION}"
        assert git_blob_sha(version_txt) == VERSION_TXT_BLOB, f"{version_txt} is not the one of {DS_COMMIT}"
    for rel, blob in PINNED_BLOBS.items():
        got = git_blob_sha(os.path.join(root, rel))
        assert got == blob, f"{rel} differs from DeepSpeed {DS_VERSION} ({DS_COMMIT}): blob {got}, expected {blob}"
    import pydantic as _pydantic
    from deepspeed.runtime import engine as _engine, lr_schedules as _lrs
    from deepspeed.runtime.config import DeepSpeedConfig as _cfg
    from deepspeed.elasticity import compute_elastic_config as _elastic
    from deepspeed.runtime.fp16 import loss_scaler as _ls
    from deepspeed.runtime.fp16.fused_optimizer import FP16_Optimizer as _fused
    from deepspeed.runtime.fp16.unfused_optimizer import FP16_UnfusedOptimizer as _unfused
    torch, ds, E, lr_schedules, DeepSpeedConfig = _torch, _ds, _engine, _lrs, _cfg
    compute_elastic_config, loss_scaler, pydantic = _elastic, _ls, _pydantic
    FP16_Optimizer, FP16_UnfusedOptimizer = _fused, _unfused
    for name in ("DeepSpeed", "deepspeed"):
        logging.getLogger(name).setLevel(logging.ERROR)
    ds.utils.logger.setLevel(logging.ERROR)
    return root


# ----------------------------------------------------------------------------------------------
# Shared helpers


def error_of(exc):
    """{"error": class name, "error_message_contains": text} the way cases-public.json writes it.
    Exceptions that mean this script (not DeepSpeed) went wrong are raised again."""
    deepspeeds = isinstance(exc, AttributeError) and "object has no attribute 'lower'" in str(exc)  # its .lower()
    if isinstance(exc, (AttributeError, NameError, ImportError)) and not deepspeeds:
        raise exc
    if isinstance(exc, pydantic.ValidationError):
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        message = f"{loc}: {first['msg']}" if loc else first["msg"]
    else:
        message = str(exc)
    if len(message) > 200:
        message = message[:200]
    return {"error": type(exc).__name__, "error_message_contains": message}


@contextlib.contextmanager
def world(size):
    """dist as DeepSpeedConfig.__init__ sees it (runtime/config.py:709-727): not initialised gives world
    size 1; otherwise get_rank/get_world_size answer as on rank 0 of `size` ranks."""
    if size == 1:
        yield
        return
    with mock.patch.object(ds.comm, "get_rank", lambda *a, **k: 0), \
            mock.patch.object(ds.comm, "get_world_size", lambda *a, **k: size):
        yield


@contextlib.contextmanager
def rank0():
    with mock.patch.object(ds.comm, "get_rank", lambda *a, **k: 0):
        yield


def config_from_file(config):
    """DeepSpeedConfig(path) on the config written as a JSON file: DeepSpeed reads a file with hjson
    (runtime/config.py:698), which gives 10 for 10.0 where a dict would keep the float. dscompile
    reads files, so the file path is the one to reproduce."""
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(config, f)
    try:
        return DeepSpeedConfig(f.name)
    finally:
        os.unlink(f.name)


def fake_engine(config):
    """A DeepSpeedEngine whose __init__ did not run: only _config and the plain attributes the called
    engine methods read are set (as DeepSpeedEngine.__init__ sets them for a non-pipeline, non-MoE
    model on rank 0 without a client optimizer)."""
    eng = E.DeepSpeedEngine.__new__(E.DeepSpeedEngine)
    torch.nn.Module.__init__(eng)
    eng._config = config
    eng.client_optimizer = None
    eng.global_rank = 0
    eng.pipeline_parallelism = False
    eng.has_moe_layers = False
    eng.zenflow = False
    eng.mpu = None
    eng.timers = None
    return eng


class _NullOp:

    def __getattr__(self, name):
        return lambda *a, **k: None


@contextlib.contextmanager
def stand_in_optimizers():
    """DeepSpeed's own optimizer classes need compiled ops or a comm backend to construct. Their
    __init__ is replaced by one that builds nothing, so engine._configure_basic_optimizer still picks
    (and instantiates) the real class: type(optimizer) is what _do_optimizer_sanity_check reads."""
    from deepspeed.ops.adam import FusedAdam, DeepSpeedCPUAdam, ZenFlowCPUAdam
    from deepspeed.ops.adagrad import DeepSpeedCPUAdagrad
    from deepspeed.ops.lamb import FusedLamb
    from deepspeed.ops.lion import FusedLion, DeepSpeedCPULion
    from deepspeed.runtime.fp16.onebit.adam import OnebitAdam
    from deepspeed.runtime.fp16.onebit.zoadam import ZeroOneAdam
    from deepspeed.runtime.fp16.onebit.lamb import OnebitLamb

    def init(self, params, *args, **kwargs):
        self.param_groups = [{"params": list(params)}]
        self.opt_id = 0
        self.ds_opt_adam = self.ds_opt_lion = self.ds_opt_adagrad = _NullOp()

    classes = [
        FusedAdam, DeepSpeedCPUAdam, ZenFlowCPUAdam, DeepSpeedCPUAdagrad, FusedLamb, FusedLion, DeepSpeedCPULion,
        OnebitAdam, ZeroOneAdam, OnebitLamb
    ]
    with contextlib.ExitStack() as stack:
        for cls in classes:
            stack.enter_context(mock.patch.object(cls, "__init__", init))
        yield


def model_params():
    return [torch.nn.Parameter(torch.zeros(2))]


def rnd_sig(rng, lo, hi, digits=3):
    """log-uniform in [lo, hi], rounded to `digits` significant digits."""
    x = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    return float(f"{x:.{digits}g}")


def jsonable(v):
    """A DeepSpeedConfig attribute value as cases-public.json renders it."""
    import enum
    if isinstance(v, pydantic.BaseModel):
        return {k: jsonable(getattr(v, k)) for k in type(v).model_fields}
    if isinstance(v, enum.Enum):
        return jsonable(v.value)
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, (np.integer, )):
        return int(v)
    if isinstance(v, (np.floating, )):
        return float(v)
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, torch.dtype):
        return str(v)
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    raise TypeError(f"cannot render {v!r}")


def attr_path(obj, path):
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


# ----------------------------------------------------------------------------------------------
# scheduler

SCHED_NOTE = ("step key k = lr after the scheduler's step() has been called k+1 times (last_batch_iteration == k); "
              "key '-1' = lr written into the optimizer by the constructor. Computed by engine._scheduler_from_config "
              "(engine.py:1598) building deepspeed/runtime/lr_schedules.py's {name} on a torch.optim.Adam "
              "(lr=optimizer_lr, betas=(0.9, 0.999)), the config read by DeepSpeedConfig from a JSON file.")
SCHED_MOM_NOTE = " momentum_beta0 = param_groups[0]['betas'][0] after the same calls."


def scheduler_config(schedule, params, optimizer_lr):
    return {
        "train_batch_size": 1,
        "optimizer": {
            "type": "Adam",
            "params": {
                "lr": optimizer_lr,
                "betas": [0.9, 0.999]
            }
        },
        "scheduler": {
            "type": schedule,
            "params": params
        },
    }


def run_scheduler(schedule, params, optimizer_lr, nsteps):
    """(steps, momentum_beta0 or None) or raises DeepSpeed's exception."""
    cfg = config_from_file(scheduler_config(schedule, params, optimizer_lr))
    eng = fake_engine(cfg)
    opt = torch.optim.Adam(model_params(), lr=optimizer_lr, betas=(0.9, 0.999))
    sched = E.DeepSpeedEngine._scheduler_from_config(eng, opt)
    group = opt.param_groups[0]
    track_mom = isinstance(sched, lr_schedules.OneCycle) and sched.cycle_momentum
    steps = {"-1": float(group["lr"])}
    mom = {"-1": float(group["betas"][0])} if track_mom else None
    for k in range(nsteps):
        sched.step()
        steps[str(k)] = float(group["lr"])
        if track_mom:
            mom[str(k)] = float(group["betas"][0])
    return steps, mom


def scheduler_case(cid, schedule, params, optimizer_lr, nsteps, varied):
    case = {
        "id": cid,
        "kind": "scheduler",
        "source": f"generated: {varied}",
        "schedule": schedule,
        "params": params,
        "optimizer_lr": optimizer_lr,
    }
    try:
        steps, mom = run_scheduler(schedule, params, optimizer_lr, nsteps)
    except Exception as e:  # DeepSpeed's own rejection is the expectation
        case["expect"] = error_of(e)
        case["asserted_by_test"] = False
        case["note"] = ("expect = the exception DeepSpeed raises building the scheduler "
                        "(engine._scheduler_from_config, engine.py:1598-1611, lr_schedules.py).")
        return case
    case["steps"] = steps
    if mom is not None:
        case["momentum_beta0"] = mom
    case["asserted_by_test"] = False
    case["note"] = SCHED_NOTE.format(name=schedule) + (SCHED_MOM_NOTE if mom is not None else "")
    return case


def gen_schedulers(rng):
    cases = []

    def warm_type(r):
        return r.choice(["log", "linear", "log", "linear", None, "LINEAR", "cosine"])

    def warm_steps(r):
        return r.choice([1, 1, 2, 3, r.randint(4, 12), r.randint(5, 40), r.randint(10, 60)])

    def opt_lr(r):
        return rnd_sig(r, 1e-5, 0.1)

    def warmup_schedule_case(sched, p, i):
        """A WarmupDecayLR/WarmupCosineLR case: p gets a drawn warmup_type; run past total_num_steps."""
        wt = warm_type(rng)
        if wt is not None:
            p["warmup_type"] = wt
        n = min(120, max(40, p["total_num_steps"] + rng.randint(3, 20)))
        return scheduler_case(
            f"sched_{sched.lower()}_{p.get('warmup_type', 'default')}_w{p['warmup_num_steps']}_t{p['total_num_steps']}_{i:03d}",
            sched, p, opt_lr(rng), n, f"{sched} params and optimizer lr")

    # WarmupLR
    for i in range(28):
        p = {}
        if rng.random() < 0.8:
            p["warmup_min_lr"] = rng.choice([0.0, 0, rnd_sig(rng, 1e-6, 1e-3)])
        if rng.random() < 0.75:
            p["warmup_max_lr"] = rnd_sig(rng, 1e-4, 0.5)
        if rng.random() < 0.9:
            p["warmup_num_steps"] = warm_steps(rng)
        wt = warm_type(rng)
        if wt is not None:
            p["warmup_type"] = wt
        if rng.random() < 0.12 and "warmup_min_lr" in p:
            p["warmup_min_lr"] = [p["warmup_min_lr"]]
        if rng.random() < 0.1 and "warmup_max_lr" in p:
            # max below min: a decreasing "warmup"
            p["warmup_min_lr"], p["warmup_max_lr"] = p["warmup_max_lr"], rnd_sig(rng, 1e-6, 1e-5)
        n = rng.randint(40, 90)
        cases.append(
            scheduler_case(f"sched_warmuplr_{p.get('warmup_type', 'default')}_w{p.get('warmup_num_steps', 'def')}_{i:03d}",
                           "WarmupLR", p, opt_lr(rng), n, "WarmupLR params and optimizer lr"))

    # WarmupDecayLR
    for i in range(28):
        w = warm_steps(rng)
        p = {"total_num_steps": rng.choice([w, w + 1, w + rng.randint(2, 60), max(1, w - rng.randint(1, 3))])}
        if rng.random() < 0.8:
            p["warmup_min_lr"] = rng.choice([0.0, rnd_sig(rng, 1e-6, 1e-3)])
        if rng.random() < 0.8:
            p["warmup_max_lr"] = rnd_sig(rng, 1e-4, 0.5)
        p["warmup_num_steps"] = w
        cases.append(warmup_schedule_case("WarmupDecayLR", p, i))

    # WarmupCosineLR
    for i in range(28):
        w = warm_steps(rng)
        p = {"total_num_steps": rng.choice([w, w + rng.randint(1, 10), w + rng.randint(10, 70), max(1, w - 2)])}
        if rng.random() < 0.8:
            p["warmup_min_ratio"] = rng.choice([0.0, round(rng.uniform(0, 0.9), 3)])
        p["warmup_num_steps"] = w
        if rng.random() < 0.8:
            p["cos_min_ratio"] = rng.choice([0.0, 0.0001, round(rng.uniform(0, 0.5), 3), 1.0])
        cases.append(warmup_schedule_case("WarmupCosineLR", p, i))

    # OneCycle
    for i in range(34):
        lo = rnd_sig(rng, 1e-5, 1e-2)
        p = {"cycle_min_lr": lo, "cycle_max_lr": rnd_sig(rng, lo * 1.5, lo * 100)}
        first = rng.randint(1, 25)
        p["cycle_first_step_size"] = first
        second = rng.choice([None, None, 0, rng.randint(1, 25), first])
        if second is not None:
            p["cycle_second_step_size"] = second
        if rng.random() < 0.35:
            p["cycle_first_stair_count"] = rng.randint(1, max(1, first))
            if rng.random() < 0.5:
                p["cycle_second_stair_count"] = rng.randint(0, 6)
        if rng.random() < 0.6:
            p["decay_step_size"] = rng.choice([0, rng.randint(1, 10)])
        if rng.random() < 0.6:
            p["decay_lr_rate"] = rng.choice([0, 0.0, round(rng.uniform(0.001, 2), 3)])
        cm = rng.choice([None, True, False])
        if cm is not None:
            p["cycle_momentum"] = cm
        if cm is not False and rng.random() < 0.7:
            mlo = round(rng.uniform(0.5, 0.9), 3)
            p["cycle_min_mom"] = mlo
            p["cycle_max_mom"] = round(rng.uniform(mlo, 0.99), 3)
            if rng.random() < 0.6:
                p["decay_mom_rate"] = rng.choice([0, round(rng.uniform(0.001, 0.5), 3)])
        if rng.random() < 0.1:
            p["cycle_min_lr"] = [p["cycle_min_lr"]]
        total = first + (first if second is None else second)
        n = min(120, max(40, total + rng.randint(10, 40)))
        cases.append(
            scheduler_case(f"sched_onecycle_f{first}_s{'def' if second is None else second}_{i:03d}", "OneCycle", p,
                           opt_lr(rng), n, "OneCycle cycle/stair/decay/momentum params and optimizer lr"))

    # LRRangeTest
    for i in range(22):
        p = {}
        if rng.random() < 0.85:
            p["lr_range_test_min_lr"] = rnd_sig(rng, 1e-6, 1e-2)
        if rng.random() < 0.9:
            p["lr_range_test_step_size"] = rng.choice([1, 2, rng.randint(3, 20), rng.randint(20, 200)])
        if rng.random() < 0.85:
            p["lr_range_test_step_rate"] = rng.choice([1.0, rnd_sig(rng, 1e-3, 10)])
        if rng.random() < 0.8:
            p["lr_range_test_staircase"] = rng.choice([True, False])
        if rng.random() < 0.1 and "lr_range_test_min_lr" in p:
            p["lr_range_test_min_lr"] = [p["lr_range_test_min_lr"]]
        n = rng.randint(40, 80)
        cases.append(
            scheduler_case(
                f"sched_lrrange_ss{p.get('lr_range_test_step_size', 'def')}_{'stair' if p.get('lr_range_test_staircase') else 'cont'}_{i:03d}",
                "LRRangeTest", p, opt_lr(rng), n, "LRRangeTest params and optimizer lr"))

    # Parameters DeepSpeed rejects (or, for the bool, surprisingly accepts).
    bad = [
        ("WarmupLR", {"warmup_num_steps": 0}),
        ("WarmupLR", {"warmup_num_steps": 2.5}),
        ("WarmupLR", {"warmup_num_steps": 10.0}),
        ("WarmupLR", {"warmup_num_steps": "10"}),
        ("WarmupLR", {"warmup_num_steps": 5, "warmup_steps": 5}),
        ("WarmupLR", {"warmup_num_steps": 5, "warmup_min_lr": [0.0, 0.0]}),
        ("WarmupDecayLR", {"warmup_num_steps": 5}),
        ("WarmupDecayLR", {"warmup_num_steps": 0, "total_num_steps": 10}),
        ("WarmupCosineLR", {"warmup_num_steps": 5}),
        ("WarmupCosineLR", {"warmup_num_steps": 3.0, "total_num_steps": 10}),
        ("OneCycle", {"cycle_min_lr": 0.001}),
        ("OneCycle", {"cycle_min_lr": 0.001, "cycle_max_lr": 0.01, "cycle_first_step_size": -3}),
        ("OneCycle", {"cycle_min_lr": 0.001, "cycle_max_lr": 0.01, "cycle_first_step_size": 4, "cycle_second_step_size": -2}),
        ("OneCycle", {"cycle_min_lr": [0.001, 0.002], "cycle_max_lr": 0.01, "cycle_first_step_size": 4}),
        ("OneCycle", {"cycle_min_lr": 0.001, "cycle_max_lr": 0.01, "cycle_first_step_size": 4, "cycle_min_mom": [0.8, 0.85]}),
        ("LRRangeTest", {"lr_range_test_step_size": 1.5}),
        ("LRRangeTest", {"lr_range_test_step_size": "5"}),
        ("LRRangeTest", {"lr_range_test_min_lr": [0.001, 0.002]}),
        ("NoSuchSchedule", {}),
    ]
    for i, (schedule, p) in enumerate(bad):
        keys = "_".join(k.replace("lr_range_test_", "").replace("warmup_", "w").replace("cycle_", "c") for k in p) or "noparams"
        case = scheduler_case(f"sched_{{}}_{schedule.lower()}_{keys}_{i:03d}", schedule, p, 0.001, 40,
                              f"{schedule} with a parameter its constructor checks")
        case["id"] = case["id"].format("bad" if "expect" in case else "checked")
        cases.append(case)
    # A JSON true passes DeepSpeed's isinstance(value, int) checks (bool is an int in Python).
    edges = [
        ("warmuplr_num_steps_true", "WarmupLR", {"warmup_num_steps": True, "warmup_max_lr": 0.01}),
        ("warmupcosinelr_num_steps_true", "WarmupCosineLR", {"warmup_num_steps": True, "total_num_steps": 20}),
        ("lrrange_step_size_true", "LRRangeTest", {"lr_range_test_step_size": True, "lr_range_test_step_rate": 0.5}),
    ]
    for i, (name, schedule, p) in enumerate(edges, start=len(bad)):
        cases.append(scheduler_case(f"sched_edge_{name}_{i:03d}", schedule, p, 0.001, 40,
                                    f"{schedule} with a bool where an int is checked"))
    return cases


# ----------------------------------------------------------------------------------------------
# loss scaler

LS_NOTES = {
    "fp16_optimizer_fused": ("DeepSpeedConfig(<fp16 params as a JSON file>); engine._configure_fp16_optimizer (engine.py:2279) run with a FusedAdam basic optimizer "
                             "built the LossScaleConfig (FP16_Optimizer constructor replaced by a recorder); "
                             "scales = FP16_Optimizer._update_scale (fused_optimizer.py:397) on a stand-in holding that "
                             "loss_scale_config and verbose=False."),
    "fp16_optimizer_unfused": ("DeepSpeedConfig(<fp16 params as a JSON file>); engine._configure_fp16_optimizer (engine.py:2279) run with a FusedLamb basic optimizer "
                               "built the LossScaleConfig (FP16_UnfusedOptimizer constructor replaced by a recorder); "
                               "scales = FP16_UnfusedOptimizer._update_scale (unfused_optimizer.py:272) on a stand-in "
                               "holding that loss_scale_config and verbose=False."),
    "zero_dynamic_loss_scaler": ("DeepSpeedConfig(<fp16 params as a JSON file>); loss_scaler.CreateLossScaler(fp16, engine.loss_scale(), engine.dynamic_loss_scale(), "
                                 "engine.dynamic_loss_scale_args()) as zero/stage_1_and_2.py:648 calls it; scales = "
                                 "its update_scale (loss_scaler.py:251) per step."),
}


def run_loss_scaler(scaler, params, pattern):
    """(initial_scale, scales, error or None); error = (index, exception)."""
    opt_type = "Lamb" if scaler == "fp16_optimizer_unfused" else "Adam"
    cfg = config_from_file({"train_batch_size": 1, "fp16": params, "optimizer": {"type": opt_type}})
    eng = fake_engine(cfg)
    scales = []
    if scaler == "zero_dynamic_loss_scaler":
        s = loss_scaler.CreateLossScaler(dtype=torch.float16,
                                         static_loss_scale=eng.loss_scale(),
                                         dynamic_scaling=eng.dynamic_loss_scale(),
                                         dynamic_loss_args=eng.dynamic_loss_scale_args())
        initial = s.loss_scale
        with rank0():
            for i, overflow in enumerate(pattern):
                try:
                    s.update_scale(overflow)
                except Exception as e:
                    return initial, scales, (i, e)
                scales.append(s.loss_scale)
        return initial, scales, None

    from deepspeed.ops.adam import FusedAdam
    from deepspeed.ops.lamb import FusedLamb
    recorded = {}

    def recorder(which):

        def make(optimizer, **kwargs):
            recorded["class"] = which
            recorded["config"] = kwargs["loss_scale_config"]
            return types.SimpleNamespace()

        return make

    with stand_in_optimizers(), \
            mock.patch.object(E, "FP16_Optimizer", recorder("fused")), \
            mock.patch.object(E, "FP16_UnfusedOptimizer", recorder("unfused")):
        basic = (FusedLamb if opt_type == "Lamb" else FusedAdam)(model_params())
        eng.timers = None
        E.DeepSpeedEngine._configure_fp16_optimizer(eng, basic, torch.float16)
    want = "unfused" if scaler == "fp16_optimizer_unfused" else "fused"
    assert recorded["class"] == want, (scaler, recorded)
    update = (FP16_UnfusedOptimizer if want == "unfused" else FP16_Optimizer)._update_scale
    holder = types.SimpleNamespace(loss_scale_config=recorded["config"], verbose=False)
    initial = holder.loss_scale_config.cur_scale
    for overflow in pattern:
        update(holder, overflow)
        scales.append(holder.loss_scale_config.cur_scale)
    return initial, scales, None


def loss_scaler_case(cid, scaler, params, pattern, varied):
    initial, scales, err = run_loss_scaler(scaler, params, pattern)
    case = {
        "id": cid,
        "kind": "loss_scaler",
        "source": f"generated: {varied}",
        "scaler": scaler,
        "params": params,
    }
    if err is not None:
        pattern = pattern[:err[0] + 1]
    case["overflow_pattern"] = pattern
    case["initial_scale"] = initial
    case["expected_scales"] = scales
    if err is not None:
        e = error_of(err[1])
        case["expected_error"] = {"at_index": err[0], **e}
    case["asserted_by_test"] = False
    case["note"] = ("expected_scales[i] = loss scale after the update for step i (overflow_pattern[i])" +
                    ("; expected_error: update_scale raised at that index" if err is not None else "") + ". " +
                    LS_NOTES[scaler])
    return case


def gen_loss_scalers(rng):
    cases = []
    scalers = ["fp16_optimizer_fused", "fp16_optimizer_unfused", "zero_dynamic_loss_scaler"]
    short = {"fp16_optimizer_fused": "fused", "fp16_optimizer_unfused": "unfused", "zero_dynamic_loss_scaler": "zero"}

    def pattern(r, n, style):
        if style == "burst":  # long overflow runs: reach min_loss_scale
            out = []
            while len(out) < n:
                out += [True] * r.randint(3, 12) + [False] * r.randint(0, 6)
            return out[:n]
        p = {"rare": 0.1, "some": 0.3, "half": 0.5, "most": 0.8}[style]
        return [r.random() < p for _ in range(n)]

    i = 0
    for scaler in scalers:
        for k in range(27):
            params = {"enabled": True}
            static = rng.random() < 0.12
            if static:
                params["loss_scale"] = rng.choice([128.0, 1.5, 1024, 65536.0, 0.25])
            else:
                if rng.random() < 0.8:
                    params["loss_scale"] = 0
                if rng.random() < 0.92:
                    params["initial_scale_power"] = rng.choice([0, 1, 2, 3, 4, 5, 6, 8, 10, 12, 16, 20,
                                                                -1] if k % 9 == 4 else [2, 3, 4, 5, 6, 8, 10, 12, 16])
                if rng.random() < 0.9:
                    params["loss_scale_window"] = rng.choice([1, 1, 2, 2, 3, 4, 5, 7, 1000])
                if rng.random() < 0.8:
                    params["hysteresis"] = rng.choice([1, 1, 2, 2, 3, 4] + ([0] if k % 13 == 6 else []))
                if rng.random() < 0.6:
                    params["consecutive_hysteresis"] = rng.choice([True, False])
                if rng.random() < 0.7:
                    params["min_loss_scale"] = rng.choice([1, 1, 2, 3, 4, 8, 16, 32, 5])
            style = rng.choice(["rare", "some", "half", "most", "burst", "burst"])
            n = rng.randint(10, 40)
            pat = pattern(rng, n, style)
            desc = "static" if static else f"p{params.get('initial_scale_power', 'def')}_h{params.get('hysteresis', 'def')}"
            cases.append(
                loss_scaler_case(f"ls_{short[scaler]}_{desc}_{style}_{i:03d}", scaler, params, pat,
                                 f"{scaler}: fp16 params and overflow pattern ({style})"))
            i += 1
    edges = [
        ("zero", "hysteresis0", {"enabled": True, "loss_scale": 0, "initial_scale_power": 4, "loss_scale_window": 2,
                                 "hysteresis": 0}, [True, True, True, False, False, True, False, False, False, True]),
        ("zero", "power_neg1", {"enabled": True, "loss_scale": 0, "initial_scale_power": -1, "loss_scale_window": 2,
                                "hysteresis": 1}, [True, False, False, False, True, True]),
        ("zero", "power0_min1", {"enabled": True, "loss_scale": 0, "initial_scale_power": 0, "hysteresis": 1},
         [False, True]),
        ("fused", "init_below_min", {"enabled": True, "loss_scale": 0, "initial_scale_power": 1, "min_loss_scale": 16,
                                     "loss_scale_window": 3}, [False, True, False, False, False, False, True, True]),
        ("unfused", "min_not_pow2", {"enabled": True, "loss_scale": 0, "initial_scale_power": 5, "min_loss_scale": 3,
                                     "loss_scale_window": 2}, [True] * 6 + [False] * 5 + [True] * 3),
    ]
    long = {v: k for k, v in short.items()}
    for which, name, params, pat in edges:
        cases.append(loss_scaler_case(f"ls_{which}_edge_{name}_{i:03d}", long[which], params, pat,
                                      f"{long[which]}: edge {name.replace('_', ' ')}"))
        i += 1
    return cases


# ----------------------------------------------------------------------------------------------
# elasticity

ELASTIC_NOTE = ("expect = elasticity.compute_elastic_config(config, target_deepspeed_version, world_size) "
                "(elasticity/elasticity.py:238){env}; micro_batch_size present when it returns one (world_size > 0).")


def run_elastic(config, target, world_size, env_ws):
    saved = os.environ.pop("WORLD_SIZE", None)
    if env_ws is not None:
        os.environ["WORLD_SIZE"] = env_ws
    try:
        return compute_elastic_config(copy.deepcopy(config), target, world_size)
    finally:
        os.environ.pop("WORLD_SIZE", None)
        if saved is not None:
            os.environ["WORLD_SIZE"] = saved


def elastic_expect(r):
    # valid_gpus None: get_best_candidates picked no candidate (the test reads null as that).
    expect = {"final_batch_size": int(r[0]), "valid_gpus": None if r[1] is None else [int(g) for g in r[1]]}
    if len(r) == 3:
        expect["micro_batch_size"] = int(r[2])
    return expect


def elastic_case(cid, config, world_size, varied, env_ws=None, target=DS_VERSION):
    case = {
        "id": cid,
        "kind": "elasticity",
        "source": f"generated: {varied}",
        "world_size": world_size,
        "target_deepspeed_version": target,
        "config": config,
    }
    try:
        r = run_elastic(config, target, world_size, env_ws)
    except Exception as e:
        case["expect"] = error_of(e)
    else:
        case["expect"] = elastic_expect(r)
    if env_ws is not None:
        case["env"] = {"WORLD_SIZE": env_ws}
    case["asserted_by_test"] = False
    case["note"] = ELASTIC_NOTE.format(env=" with env WORLD_SIZE set as given" if env_ws is not None else
                                       " with WORLD_SIZE unset in the environment")
    return case


def gen_elasticity(rng):
    cases = []

    def mbs(r, hi=32):
        return sorted(r.sample(range(1, hi + 1), r.randint(1, 5)))

    i = 0
    # version 0.1
    for k in range(26):
        e = {"enabled": True, "max_train_batch_size": rng.choice([rng.randint(50, 500), rng.randint(500, 5000),
                                                                  rng.randint(5000, 20000)])}
        e["micro_batch_sizes"] = mbs(rng, min(32, e["max_train_batch_size"]))
        if rng.random() < 0.8:
            e["min_gpus"] = rng.choice([1, 1, 2, rng.randint(1, 64)])
        if rng.random() < 0.8:
            e["max_gpus"] = rng.choice([e.get("min_gpus", 1) + rng.randint(0, 100), rng.randint(100, 2000), 10000])
        if rng.random() < 0.5:
            e["prefer_larger_batch"] = rng.choice([True, False])
        if rng.random() < 0.3:
            e["min_time"] = rng.randint(0, 30)
        e["version"] = 0.1
        config = {"elasticity": e}
        probe = run_elastic(config, DS_VERSION, 0, None)
        probe = {"valid_gpus": [int(g) for g in probe[1] or []]}
        mode = rng.choice(["zero", "valid", "valid", "invalid"])
        if mode == "valid" and probe["valid_gpus"]:
            ws = rng.choice(probe["valid_gpus"])
        elif mode == "invalid":
            cand = [w for w in range(1, 300) if w not in probe["valid_gpus"]]
            ws = rng.choice(cand)
        else:
            ws, mode = 0, "zero"
        cases.append(elastic_case(f"elastic_v01_max{e['max_train_batch_size']}_ws{ws}_{i:03d}", config, ws,
                                  f"elasticity v0.1 config, world size {mode}"))
        i += 1

    # version 0.2
    for k in range(20):
        mp = rng.choice([1, 1, 2, 4])
        npn = rng.choice([g for g in [1, 2, 4, 8, 16] if g % mp == 0])
        e = {"enabled": True, "max_train_batch_size": rng.choice([rng.randint(100, 2000), rng.randint(2000, 20000)]),
             "micro_batch_sizes": mbs(rng, 16), "version": 0.2, "num_gpus_per_node": npn}
        if mp > 1 or rng.random() < 0.3:
            e["model_parallel_size"] = mp
        if rng.random() < 0.8:
            e["min_gpus"] = rng.choice([1, npn, rng.randint(1, 64)])
        if rng.random() < 0.8:
            e["max_gpus"] = rng.choice([rng.randint(64, 2000), 10000, e.get("min_gpus", 1) + rng.randint(0, 40)])
        if rng.random() < 0.5:
            e["prefer_larger_batch"] = rng.choice([True, False])
        config = {"elasticity": e}
        nodes = rng.randint(1, 16)
        gpus = nodes * npn
        env_ws = None
        mode = rng.choice(["ws", "ws", "env", "ws_other"])
        if mode == "ws":
            ws = gpus
        elif mode == "ws_other":
            ws = rng.randint(1, 64)
        else:
            ws, env_ws = 0, str(gpus)
        cases.append(
            elastic_case(f"elastic_v02_mp{mp}_npn{npn}_ws{ws}{'_env' + env_ws if env_ws else ''}_{i:03d}", config, ws,
                         f"elasticity v0.2 config, {mode}", env_ws=env_ws))
        i += 1

    # errors and edges
    base = {"enabled": True, "max_train_batch_size": 1000, "micro_batch_sizes": [2, 4, 6], "min_gpus": 1,
            "max_gpus": 64, "version": 0.1}

    def with_(**kw):
        e = dict(base)
        for k, v in kw.items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = v
        return {"elasticity": e}

    edge = [
        ("mb_over_max", with_(max_train_batch_size=5, micro_batch_sizes=[2, 8]), 0, None, DS_VERSION),
        ("min_gt_max", with_(min_gpus=10, max_gpus=4), 0, None, DS_VERSION),
        ("mp_zero", with_(model_parallel_size=0), 0, None, DS_VERSION),
        ("npn_zero", with_(num_gpus_per_node=0, version=0.2), 4, None, DS_VERSION),
        ("min_time_neg", with_(min_time=-1), 0, None, DS_VERSION),
        ("version_03", with_(version=0.3), 0, None, DS_VERSION),
        ("mp2_v01", with_(model_parallel_size=2), 0, None, DS_VERSION),
        ("v02_npn_not_div_mp", with_(version=0.2, model_parallel_size=4, num_gpus_per_node=6), 12, None, DS_VERSION),
        ("v02_no_world_size", with_(version=0.2, num_gpus_per_node=4), 0, None, DS_VERSION),
        ("enabled_missing", with_(enabled=None), 0, None, DS_VERSION),
        ("no_section", {"train_batch_size": 4}, 0, None, DS_VERSION),
        ("mb_zero", with_(micro_batch_sizes=[0, 2]), 0, None, DS_VERSION),
        ("mb_string", with_(micro_batch_sizes="2,4"), 0, None, DS_VERSION),
        ("max_gpus_zero", with_(max_gpus=0), 0, None, DS_VERSION),
        ("mb_duplicates_ws", with_(micro_batch_sizes=[4, 2, 4, 2]), 2, None, DS_VERSION),
        ("defaults_min_max", with_(min_gpus=None, max_gpus=None), 0, None, DS_VERSION),
        ("max_equals_mb", with_(max_train_batch_size=6, micro_batch_sizes=[6]), 1, None, DS_VERSION),
        ("target_0_3_7", dict(with_()), 0, None, "0.3.7"),
        ("target_0_3_8", dict(with_()), 0, None, "0.3.8"),
        ("target_1_0", dict(with_()), 8, None, "1.0"),
        ("v02_min_below_npn", with_(version=0.2, num_gpus_per_node=8, min_gpus=2, max_gpus=7), 8, None, DS_VERSION),
        # No candidate batch has a valid GPU count and none is "better" than min(micro_batch_sizes):
        # get_best_candidates returns valid_gpus None.
        ("v02_no_candidate", with_(version=0.2, num_gpus_per_node=2, max_train_batch_size=3536, micro_batch_sizes=[14],
                                   min_gpus=50, max_gpus=57, prefer_larger_batch=False), 0, "30", DS_VERSION),
        ("v01_no_candidate_ws", with_(max_train_batch_size=78, micro_batch_sizes=[30], min_gpus=28, max_gpus=10000,
                                      prefer_larger_batch=False), 2, None, DS_VERSION),
    ]
    for name, config, ws, env_ws, target in edge:
        cases.append(
            elastic_case(f"elastic_edge_{name}_{i:03d}", config, ws, f"elasticity edge: {name.replace('_', ' ')}",
                         env_ws=env_ws, target=target))
        i += 1
    return [c for c in cases if c is not None]


# ----------------------------------------------------------------------------------------------
# ds_config

CFG_NOTE = ("expect = attributes of DeepSpeedConfig(<config as a JSON file>) (runtime/config.py:692) with dist {dist}; "
            "or the exception it raises.")


def build_ds_config(config, world_size):
    with world(world_size):
        return config_from_file(config)


def present(obj, path):
    """False when an attribute on the way to `path` is None (an unset sub-config), so the path has no value."""
    parts = path.split(".")
    for part in parts[:-1]:
        obj = getattr(obj, part)
        if obj is None:
            return False
    return True


def ds_config_case(cid, config, world_size, paths, varied, skip_under_none=False):
    """skip_under_none: leave out the paths below a sub-config DeepSpeed left None (its own null, when listed,
    is checked instead)."""
    case = {
        "id": cid,
        "kind": "ds_config",
        "source": f"generated: {varied}",
        "world_size": world_size,
        "config": config,
    }
    try:
        cfg = build_ds_config(config, world_size)
    except Exception as e:
        case["expect"] = error_of(e)
    else:
        if callable(paths):  # paths that depend on what DeepSpeed resolved
            paths = paths(cfg)
        case["expect"] = {p: jsonable(attr_path(cfg, p)) for p in paths if not skip_under_none or present(cfg, p)}
    case["asserted_by_test"] = False
    case["note"] = CFG_NOTE.format(dist="not initialised (world size 1)" if world_size == 1 else
                                   f"get_rank() == 0 and get_world_size() == {world_size} (patched)")
    return case


BATCH = ["train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps"]
ZERO_FIELDS_SHOWN = ["zero_config.stage", "zero_config.overlap_comm", "zero_config.contiguous_gradients",
                     "zero_config.reduce_scatter", "zero_config.reduce_bucket_size",
                     "zero_config.allgather_bucket_size"]
FP16_FIELDS = ["enabled", "auto_cast", "loss_scale", "initial_scale_power", "loss_scale_window", "hysteresis",
               "consecutive_hysteresis", "min_loss_scale", "fp16_master_weights_and_grads"]
BF16_FIELDS = ["enabled", "immediate_grad_update", "check_grad_overflow", "bf16_master_weights_and_grads",
               "bf16_optimizer_states"]


def gen_ds_configs(rng):
    cases = []
    i = 0
    combos = [("all3", BATCH), ("tb_mb", BATCH[:2]), ("tb_gas", [BATCH[0], BATCH[2]]), ("mb_gas", BATCH[1:]),
              ("tb_only", BATCH[:1]), ("mb_only", BATCH[1:2]), ("gas_only", BATCH[2:])]
    # batch resolution: every combination, consistent and not
    for k in range(30):
        name, keys = combos[k % len(combos)]
        ws = rng.randint(1, 16)
        mb, gas = rng.randint(1, 16), rng.randint(1, 8)
        tb = mb * gas * ws
        consistent = rng.random() < 0.6
        if not consistent:
            choice = rng.choice(["tb", "mb", "gas"])
            if choice == "tb":
                tb += rng.randint(1, max(1, mb))
            elif choice == "mb":
                mb += rng.randint(1, 3)
            else:
                gas += 1
        vals = {BATCH[0]: tb, BATCH[1]: mb, BATCH[2]: gas}
        config = {key: vals[key] for key in keys}
        cases.append(
            ds_config_case(f"cfg_batch_{name}_{tb}_{mb}_{gas}_ws{ws}_{i:03d}", config, ws, BATCH,
                           f"batch keys {name}, world size {ws}, {'consistent' if consistent else 'perturbed'}"))
        i += 1
    odd = [
        ("none_given", {}, 2),
        ("tb_zero", {"train_batch_size": 0}, 1),
        ("mb_negative", {"train_micro_batch_size_per_gpu": -2}, 2),
        ("tb_float", {"train_batch_size": 32.0, "train_micro_batch_size_per_gpu": 4}, 2),
        ("mb_float_gas", {"train_micro_batch_size_per_gpu": 2.0, "gradient_accumulation_steps": 3}, 3),
        ("tb_null", {"train_batch_size": None, "train_micro_batch_size_per_gpu": 4}, 4),
        ("gas_null", {"train_batch_size": 16, "gradient_accumulation_steps": None}, 4),
        ("tb_lt_ws", {"train_batch_size": 3}, 4),
    ]
    for name, config, ws in odd:
        cases.append(ds_config_case(f"cfg_batch_{name}_ws{ws}_{i:03d}", config, ws, BATCH, f"batch keys: {name}"))
        i += 1

    # zero_optimization
    int_fields = {
        "reduce_bucket_size": lambda r: r.choice([1, 10**6, 5 * 10**8, 2**31, "auto"]),
        "allgather_bucket_size": lambda r: r.choice([2**20, 200000000, "auto"]),
        "sub_group_size": lambda r: r.choice([10**6, 10**9]),
        "stage3_prefetch_bucket_size": lambda r: r.choice([0, 5 * 10**7, 12345]),
        "stage3_param_persistence_threshold": lambda r: r.choice([0, 10**5, 10**6]),
        "stage3_max_live_parameters": lambda r: r.choice([10**9, 3 * 10**7]),
        "stage3_max_reuse_distance": lambda r: r.choice([0, 10**9]),
        "zero_hpz_partition_size": lambda r: r.choice([1, 2, 8]),
    }
    bool_fields = ["contiguous_gradients", "reduce_scatter", "overlap_comm", "load_from_fp32_weights",
                   "round_robin_gradients", "stage3_gather_16bit_weights_on_model_save", "zero_quantized_weights",
                   "zero_quantized_gradients", "elastic_checkpoint", "pipeline_loading_checkpoint"]
    alias_to_field = {
        "stage3_prefetch_bucket_size": "prefetch_bucket_size",
        "stage3_param_persistence_threshold": "param_persistence_threshold",
        "stage3_max_live_parameters": "max_live_parameters",
        "stage3_max_reuse_distance": "max_reuse_distance",
        "stage3_gather_16bit_weights_on_model_save": "gather_16bit_weights_on_model_save",
    }
    for k in range(16):
        z = {}
        if rng.random() < 0.9:
            z["stage"] = rng.choice([0, 1, 2, 3])
        for f in rng.sample(sorted(int_fields), rng.randint(0, 3)):
            z[f] = int_fields[f](rng)
        for f in rng.sample(bool_fields, rng.randint(0, 3)):
            z[f] = rng.choice([True, False])
        if rng.random() < 0.3:
            dev = rng.choice(["cpu", "none", "nvme"])
            oo = {"device": dev}
            if dev == "nvme":
                oo["nvme_path"] = "/local_nvme"
            if rng.random() < 0.5:
                oo["pin_memory"] = rng.choice([True, False])
            if rng.random() < 0.4:
                oo["ratio"] = rng.choice([0.3, 1.0])
            z["offload_optimizer"] = oo
        if rng.random() < 0.15:
            z["offload_param"] = {"device": rng.choice(["cpu", "none"])}
        paths = list(ZERO_FIELDS_SHOWN)
        for f in z:
            if f in ("offload_optimizer", "offload_param"):
                paths.append(f"zero_config.{f}")
            elif f != "stage":
                p = f"zero_config.{alias_to_field.get(f, f)}"
                if p not in paths:
                    paths.append(p)
        cases.append(
            ds_config_case(f"cfg_zero_stage{z.get('stage', 'def')}_{len(z)}keys_{i:03d}",
                           {"train_batch_size": 8, "zero_optimization": z}, 1, paths,
                           "zero_optimization fields and values"))
        i += 1
    zero_odd = [
        ("stage4", {"stage": 4}),
        ("stage_str", {"stage": "2"}),
        ("unknown_key", {"stage": 2, "overlap_com": True}),
        ("neg_bucket", {"stage": 2, "reduce_bucket_size": -1}),
        ("bucket_float", {"stage": 2, "reduce_bucket_size": 5e8}),
        ("bucket_fraction", {"stage": 2, "reduce_bucket_size": 1.5}),
        ("ratio_stage2", {"stage": 2, "offload_optimizer": {"device": "cpu", "ratio": 0.5}}),
        ("alias_and_name", {"stage": 3, "stage3_prefetch_bucket_size": 10, "prefetch_bucket_size": 20}),
        ("cpu_offload_true", {"stage": 2, "cpu_offload": True}),
        ("bool_legacy", True),
        ("overlap_auto_stage3", {"stage": 3, "overlap_comm": "auto"}),
        ("device_upper", {"stage": 2, "offload_optimizer": {"device": "CPU"}}),
    ]
    for name, z in zero_odd:
        paths = list(ZERO_FIELDS_SHOWN)
        if isinstance(z, dict):
            for f in z:
                if f in ("offload_optimizer", ):
                    paths.append("zero_config.offload_optimizer")
                elif f in ("prefetch_bucket_size", "stage3_prefetch_bucket_size"):
                    paths.append("zero_config.prefetch_bucket_size")
        paths = list(dict.fromkeys(paths))
        cases.append(
            ds_config_case(f"cfg_zero_{name}_{i:03d}", {"train_batch_size": 8, "zero_optimization": z}, 1, paths,
                           f"zero_optimization: {name.replace('_', ' ')}"))
        i += 1

    # fp16 / bf16
    for k in range(12):
        config = {"train_batch_size": 4}
        which = rng.choice(["fp16", "fp16", "bf16", "bfloat16"])
        if which == "fp16":
            f = {"enabled": rng.choice([True, True, False])}
            if rng.random() < 0.5:
                f["loss_scale"] = rng.choice([0, 0.0, 128, 2.5, "64"])
            for key, choices in [("initial_scale_power", [0, 8, 16, 24, "auto"]), ("loss_scale_window", [1, 100, 1000]),
                                 ("hysteresis", [1, 2, 4]), ("consecutive_hysteresis", [True, False]),
                                 ("min_loss_scale", [1, 2, 16, 1.0]), ("auto_cast", [True, False])]:
                if rng.random() < 0.45:
                    f[key] = rng.choice(choices)
            config["fp16"] = f
            paths = [f"float16_config.{x}" for x in FP16_FIELDS]
        else:
            b = {"enabled": rng.choice([True, True, False])}
            for key in ["immediate_grad_update", "check_grad_overflow"]:
                if rng.random() < 0.5:
                    b[key] = rng.choice([True, False])
            config[which] = b
            paths = [f"bfloat16_config.{x}" for x in BF16_FIELDS]
        cases.append(ds_config_case(f"cfg_{which}_{i:03d}", config, 1, paths, f"{which} section fields"))
        i += 1
    prec_odd = [
        ("fp16_and_bf16", {"fp16": {"enabled": True}, "bf16": {"enabled": True}}, "float16_config.enabled"),
        ("fp16_extra_key", {"fp16": {"enabled": True, "loss_scal": 0}}, "float16_config.enabled"),
        ("fp16_hysteresis_str", {"fp16": {"enabled": True, "hysteresis": "two"}}, "float16_config.hysteresis"),
        ("fp16_window_frac", {"fp16": {"enabled": True, "loss_scale_window": 2.5}}, "float16_config.loss_scale_window"),
        ("fp16_min_scale_frac", {"fp16": {"enabled": True, "min_loss_scale": 0.5}}, "float16_config.min_loss_scale"),
        ("fp16_master_no_zero", {"fp16": {"enabled": True, "fp16_master_weights_and_grads": True}},
         "float16_config.fp16_master_weights_and_grads"),
        # With the CPU offload + DeepSpeedCPUAdam the ZeRO optimizer needs for it (base_optimizer.py:484).
        ("fp16_master_zero2", {"fp16": {"enabled": True, "fp16_master_weights_and_grads": True},
                               "zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu"}},
                               "optimizer": {"type": "Adam", "params": {"lr": 0.001}}},
         "float16_config.fp16_master_weights_and_grads"),
        ("bf16_states_no_master", {"bf16": {"enabled": True, "bf16_optimizer_states": True},
                                   "zero_optimization": {"stage": 2}}, "bfloat16_config.bf16_optimizer_states"),
        ("bf16_master_states_zero1", {"bf16": {"enabled": True, "bf16_master_weights_and_grads": True,
                                               "bf16_optimizer_states": True}, "zero_optimization": {"stage": 1}},
         "bfloat16_config.bf16_optimizer_states"),
        ("bf16_master_no_zero", {"bf16": {"enabled": True, "bf16_master_weights_and_grads": True}},
         "bfloat16_config.bf16_master_weights_and_grads"),
        ("bf16_and_bfloat16", {"bf16": {"enabled": False}, "bfloat16": {"enabled": True}}, "bfloat16_config.enabled"),
        ("bf16_enabled_str", {"bf16": {"enabled": "yes"}}, "bfloat16_config.enabled"),
        ("fp16_disabled_window0", {"fp16": {"enabled": False, "loss_scale_window": 0}},
         "float16_config.loss_scale_window"),
    ]
    for name, extra, path in prec_odd:
        config = {"train_batch_size": 4, **extra}
        cases.append(ds_config_case(f"cfg_prec_{name}_{i:03d}", config, 1, [path], f"precision: {name.replace('_', ' ')}"))
        i += 1
    return cases


# ----------------------------------------------------------------------------------------------
# ds_config, continued: the ZeRO sub-configs (offload_optimizer, offload_param, zenflow, leaf_module),
# the stage-3 knobs under both names, deprecated keys, "auto", value types, gradient_allreduce_op and
# communication_data_type. Drawn from their own random stream (main: "<seed>:ds_config:more"), so the
# cases above keep their draws.

# Values pydantic's lax mode may or may not take for an int, a bool, a float in [0, 1] field.
ODD_INTS = ["1000", " 77 ", "1_000", "12.0", 2.0, True, False, -1, -5, 1.5, "5e7", None, "auto", "abc", [4]]
ODD_BOOLS = ["true", "false", "yes", "no", "on", "off", "1", "0", "t", "f", "y", "n", "True", "FALSE", 1, 0, 2, 1.0,
             0.0, 0.5, None, "auto", "maybe", ""]
ODD_FRACS = ["0.3", "1", 1, 0, True, False, -0.1, 1.5, 2, None, "auto", "abc", "nan", "inf"]

STAGE3_INT_KNOBS = [("prefetch_bucket_size", "stage3_prefetch_bucket_size"),
                    ("param_persistence_threshold", "stage3_param_persistence_threshold"),
                    ("model_persistence_threshold", "stage3_model_persistence_threshold"),
                    ("max_live_parameters", "stage3_max_live_parameters"),
                    ("max_reuse_distance", "stage3_max_reuse_distance"),
                    ("module_granularity_threshold", "stage3_module_granularity_threshold")]
STAGE3_BOOL_KNOBS = [("gather_16bit_weights_on_model_save", "stage3_gather_16bit_weights_on_model_save"),
                     ("use_all_reduce_for_fetch_params", "stage3_use_all_reduce_for_fetch_params"),
                     ("allgather_sequential", "stage3_allgather_sequential")]
ZERO_BOOLS = ["contiguous_gradients", "reduce_scatter", "overlap_comm", "load_from_fp32_weights", "elastic_checkpoint",
              "round_robin_gradients", "ignore_unused_parameters", "memory_efficient_linear", "override_module_apply",
              "pipeline_loading_checkpoint", "log_trace_cache_warnings", "use_multi_rank_bucket_allreduce",
              "allgather_partitions", "enable_sanity_checks"]
ZERO_INTS = {"reduce_bucket_size": [0, 1, 10**6, 5 * 10**8, 2**31], "allgather_bucket_size": [1, 2**20, 5 * 10**8],
             "sub_group_size": [0, 10**6, 10**12], "zero_hpz_partition_size": [0, 1, 2],
             "mics_shard_size": [-1, 0, -8]}


def with_prefetch(paths):
    """paths(cfg): `paths` less zero_config.prefetch_bucket_size when stage 3 runs with allgather_sequential: the
    engine then sets that attribute to 1 when it builds the ZeRO-3 optimizer (engine.py:2471-2473), which a bare
    DeepSpeedConfig does not show but dscompile's resolved config does."""

    def pick(cfg):
        z = cfg.zero_config
        if z.stage == 3 and z.allgather_sequential:
            return [p for p in paths if p != "zero_config.prefetch_bucket_size"]
        return paths

    return pick


def gen_ds_configs_more(rng, i):
    cases = []

    def pick(r, legal, odd, p_legal):
        return r.choice(legal) if r.random() < p_legal else r.choice(odd)

    def zero_case(tag, z, paths, varied, top=None, skip=True):
        nonlocal i
        config = {"train_batch_size": 8, "zero_optimization": z}
        if top:
            config.update(top)
        cases.append(ds_config_case(f"cfg_{tag}_{i:03d}", config, 1, list(dict.fromkeys(paths)) if isinstance(
            paths, list) else paths, varied, skip_under_none=skip))
        i += 1

    # offload_optimizer: every field, legal values mostly
    oo_legal = {
        "device": ["cpu", "cpu", "nvme", "none"], "nvme_path": ["/local_nvme", "/mnt/nvme0/ds", "relative/dir", None],
        "buffer_count": [0, 1, 4, 5, 8], "pin_memory": [True, False], "pipeline_read": [True, False],
        "pipeline_write": [True, False], "fast_init": [True, False], "ratio": [0.0, 0.25, 0.3, 0.5, 1, 1.0],
        "super_offload": [True, False], "cpuadam_cores_perc": [0.0, 0.5, 0.8, 1.0]
    }
    oo_odd = {
        "device": ["CPU", "Cpu", "NVMe", "gpu", "", None, 1, "auto"], "nvme_path": [5, "auto", True, ["/a"]],
        "buffer_count": ODD_INTS, "pin_memory": ODD_BOOLS, "pipeline_read": ODD_BOOLS, "pipeline_write": ODD_BOOLS,
        "fast_init": ODD_BOOLS, "ratio": ODD_FRACS, "super_offload": ODD_BOOLS, "cpuadam_cores_perc": ODD_FRACS
    }
    for k in range(24):
        oo = {}
        for f in rng.sample(sorted(oo_legal), rng.randint(1, 5)):
            oo[f] = pick(rng, oo_legal[f], oo_odd[f], 0.7)
        if oo.get("device") == "nvme" and "nvme_path" not in oo and rng.random() < 0.7:
            oo["nvme_path"] = "/local_nvme"
        partial = isinstance(oo.get("ratio"), (int, float)) and not isinstance(oo.get("ratio"), bool) and oo["ratio"] < 1
        stage = rng.choice([3, 3, 3, 2]) if partial else rng.choice([0, 1, 2, 2, 3])
        z = {"stage": stage, "offload_optimizer": oo}
        paths = ["zero_config.stage", "zero_config.offload_optimizer.pipeline"]
        paths += [f"zero_config.offload_optimizer.{f}" for f in oo]
        if rng.random() < 0.5:
            paths.append("zero_config.offload_optimizer")
        zero_case(f"off_opt_z{stage}_{len(oo)}keys", z, paths, "zero_optimization.offload_optimizer fields and values")

    # offload_param
    op_legal = {
        "device": ["cpu", "cpu", "nvme", "none"], "nvme_path": ["/local_nvme", "relative/dir", None],
        "buffer_count": [0, 1, 5, 8], "buffer_size": [0, 10**6, 10**8, 2**30], "max_in_cpu": [0, 5 * 10**8, 10**9],
        "pin_memory": [True, False]
    }
    op_odd = {
        "device": ["CPU", "Nvme", "disk", "", None, 0, "auto"], "nvme_path": [5, "auto", False], "buffer_count": ODD_INTS,
        "buffer_size": ODD_INTS, "max_in_cpu": ODD_INTS, "pin_memory": ODD_BOOLS
    }
    for k in range(18):
        op = {}
        for f in rng.sample(sorted(op_legal), rng.randint(1, 4)):
            op[f] = pick(rng, op_legal[f], op_odd[f], 0.7)
        stage = rng.choice([0, 1, 2, 3, 3, 3])
        z = {"stage": stage, "offload_param": op}
        if rng.random() < 0.3:
            z["offload_optimizer"] = {"device": rng.choice(["cpu", "none"])}
        paths = ["zero_config.stage"] + [f"zero_config.offload_param.{f}" for f in op]
        if rng.random() < 0.5:
            paths.append("zero_config.offload_param")
        zero_case(f"off_param_z{stage}_{len(op)}keys", z, paths, "zero_optimization.offload_param fields and values")

    # zenflow
    zf_legal = {
        "topk_ratio": [0.0, 0.05, 0.1, 0.25, 1], "select_strategy": ["auto", "step", "epoch"],
        "select_interval": ["auto", 1, 4, 10], "update_interval": ["auto", 1, 4, 16], "overlap_step": [True, False],
        "offload": [True, False], "auto_ratio": [0.5, 0.9, 0.99, 1.0], "full_warm_up_rounds": [0, 1, 3, 10],
        "pt_reserved_cores_perc": [0.0, 0.25, 0.5, 0.75, 1.0], "steps_per_epoch": [None, 100]
    }
    intervals = ["4", "", "AUTO", 0, -1, 2.0, 2.5, True, None]
    zf_odd = {
        "topk_ratio": ODD_FRACS, "select_strategy": ["AUTO", "Step", "none", "", 1, None],
        "select_interval": intervals, "update_interval": intervals, "overlap_step": ODD_BOOLS, "offload": ODD_BOOLS,
        "auto_ratio": ODD_FRACS, "full_warm_up_rounds": ["3", -1, 2.5, True, None, 2.0, "auto"],
        "pt_reserved_cores_perc": ["0.5", 1, 0, True, -0.1, 1.5, None, "auto"], "steps_per_epoch": ["10", 2.5, "auto"]
    }
    for k in range(20):
        zf = {}
        for f in rng.sample(sorted(zf_legal), rng.randint(0, 5)):
            zf[f] = pick(rng, zf_legal[f], zf_odd[f], 0.65)
        stage = rng.choice([0, 1, 2, 2, 3])
        z = {"stage": stage, "zenflow": zf}
        top = None
        if rng.random() < 0.25:
            z["offload_optimizer"] = {"device": "cpu"}
        if rng.random() < 0.15:
            top = {"gradient_allreduce_op": rng.choice(["sum", "mean"])}
        paths = ["zero_config.stage"] + [f"zero_config.zenflow.{f}" for f in zf]
        if not zf or rng.random() < 0.4:
            paths.append("zero_config.zenflow")
        zero_case(f"zenflow_z{stage}_{len(zf)}keys", z, paths, "zero_optimization.zenflow fields and values", top=top)

    # leaf_module
    leaf_values = ["my.pkg.Block", ["a.B", "c.D"], [], ["x.Y", "x.Y", "z.W"], "", [""], [1], None, {"a": 1}, "auto",
                   ["auto"], [True], ["a.B", 2.5]]
    for k in range(10):
        lm = {}
        for f in rng.sample(["classes", "names", "name_suffixes"], rng.randint(1, 3)):
            lm[f] = rng.choice(leaf_values)
        if rng.random() < 0.15:
            lm["suffixes"] = ["tail"]
        paths = [f"zero_config.leaf_module.{f}" for f in lm if f != "suffixes"]
        if rng.random() < 0.4:
            paths.append("zero_config.leaf_module")
        zero_case(f"leaf_{len(lm)}keys", {"stage": rng.choice([2, 3]), "leaf_module": lm}, paths,
                  "zero_optimization.leaf_module fields and values")

    # stage-3 knobs, by field name, by their stage3_ alias, or both
    knob_ints = [0, 1, 12345, 10**5, 5 * 10**7, 10**9, 2**31]
    for k in range(22):
        z = {"stage": rng.choice([0, 2, 3, 3, 3])}
        paths = ["zero_config.stage"]
        knobs = rng.sample(STAGE3_INT_KNOBS + STAGE3_BOOL_KNOBS, rng.randint(1, 4))
        for field, alias in knobs:
            is_bool = (field, alias) in STAGE3_BOOL_KNOBS
            legal = [True, False] if is_bool else knob_ints + ([-1, -100] if field == "module_granularity_threshold" else [])
            value = pick(rng, legal, ODD_BOOLS if is_bool else ODD_INTS, 0.65)
            how = rng.choice(["field", "alias", "alias", "both"] if k % 7 else ["both"])
            if how in ("field", "both"):
                z[field] = value
            if how in ("alias", "both"):
                z[alias] = value if how == "alias" else pick(rng, legal, legal, 1.0)
            paths.append(f"zero_config.{field}")
        zero_case(f"stage3_knobs_z{z['stage']}_{len(knobs)}", z, with_prefetch(paths),
                  "ZeRO stage-3 knobs by field name and alias, legal and odd values")

    # the other int and bool fields with odd value types
    for k in range(14):
        z = {}
        paths = []
        if rng.random() < 0.7:
            z["stage"] = rng.choice([0, 1, 2, 3])
            paths.append("zero_config.stage")
        for f in rng.sample(ZERO_BOOLS, rng.randint(0, 2)):
            z[f] = rng.choice(ODD_BOOLS)
            paths.append(f"zero_config.{f}")
        for f in rng.sample(sorted(ZERO_INTS), rng.randint(1 if len(z) < 2 else 0, 2)):
            z[f] = pick(rng, ZERO_INTS[f], ODD_INTS, 0.35)
            paths.append(f"zero_config.{f}")
        zero_case(f"zero_types_{len(z)}keys", z, paths, "zero_optimization bool/int fields given strings, numbers, null")

    # deprecated keys with and without their replacements
    dep_values = [True, True, False, None, "yes", "false", 1, 0, 2, "auto"]
    for k in range(14):
        z = {"stage": rng.choice([1, 2, 3])}
        paths = ["zero_config.stage"]
        for dep, new, path in [("cpu_offload", "offload_optimizer", "zero_config.offload_optimizer"),
                               ("cpu_offload_param", "offload_param", "zero_config.offload_param"),
                               ("cpu_offload_use_pin_memory", None, None),
                               ("stage3_gather_fp16_weights_on_model_save",
                                rng.choice(["gather_16bit_weights_on_model_save",
                                            "stage3_gather_16bit_weights_on_model_save"]),
                                "zero_config.gather_16bit_weights_on_model_save")]:
            if rng.random() < 0.45:
                z[dep] = rng.choice(dep_values)
                if new is not None and rng.random() < 0.25:
                    z[new] = {"device": "cpu", "pin_memory": False} if new.startswith("offload") else True
                paths += [path] if path else ["zero_config.offload_optimizer", "zero_config.offload_param"]
        if len(z) == 1:
            z["cpu_offload"] = True
            paths.append("zero_config.offload_optimizer")
        keys = "_".join(x.replace("cpu_offload", "co").replace("stage3_gather_fp16_weights_on_model_save", "gfp16")
                        for x in z if x != "stage" and x in ("cpu_offload", "cpu_offload_param",
                                                               "cpu_offload_use_pin_memory",
                                                               "stage3_gather_fp16_weights_on_model_save"))
        zero_case(f"deprecated_{keys}", z, paths, "deprecated ZeRO keys, their values, with or without the new key")

    # gradient_allreduce_op
    ops = ["mean", "sum", "SUM", "Mean", "MEAN", "sum ", "max", "avg", "", None, 1, True, "auto"]
    for k in range(14):
        op = ops[k] if k < len(ops) else rng.choice(ops)
        config = {"train_batch_size": 4, "gradient_allreduce_op": op}
        ctx = rng.choice(["z0", "z1", "z2", "z3", "zenflow", "deepcompile"])
        if ctx in ("z0", "z1", "z2", "z3"):
            config["zero_optimization"] = {"stage": int(ctx[1])}
        elif ctx == "zenflow":
            config["zero_optimization"] = {"stage": rng.choice([1, 2]), "zenflow": {}}
        else:
            config["zero_optimization"] = {"stage": rng.choice([1, 2])}
            config["compile"] = {"deepcompile": rng.choice([True, False])}
        name = sanitized(str(op)).lower() if op not in ("", None) else ("empty" if op == "" else "null")
        cases.append(ds_config_case(f"cfg_allreduce_op_{name}_{ctx}_{i:03d}", config, 1,
                                    ["gradient_allreduce_op", "zero_config.stage"],
                                    "gradient_allreduce_op value, with ZeRO stage 3, ZenFlow or DeepCompile"))
        i += 1

    # communication_data_type: DeepSpeed keeps a torch.dtype the harness cannot compare, so an accepted value is
    # checked through acceptance (and a null through its null).
    dtypes = ["fp16", "FP16", "bf16", "Bf16", "fp32", "FP32", None, "float16", "int8", "", "auto", "half"]
    for k in range(12):
        key = "communication_data_type" if k < 8 else "seq_parallel_communication_data_type"
        v = dtypes[k] if k < 8 else rng.choice(dtypes[6:])
        config = {"train_batch_size": 4, key: v}

        def comm_paths(cfg, key=key):
            return BATCH + ([key] if getattr(cfg, key) is None else [])

        name = sanitized(str(v)).lower() if v not in ("", None) else ("empty" if v == "" else "null")
        cases.append(ds_config_case(f"cfg_{'comm' if k < 8 else 'seqcomm'}_dtype_{name}_{i:03d}", config, 1,
                                    comm_paths, f"{key} value"))
        i += 1

    # fixed edges: "auto", the section's own type, stage values, nvme_path forms, deepcompile given as a string
    edges = [
        ("auto_stage", {"stage": "auto"}, ["zero_config.stage", "zero_config.overlap_comm"]),
        ("auto_offload_optimizer", {"stage": 2, "offload_optimizer": "auto"}, ["zero_config.offload_optimizer"]),
        ("auto_offload_param_device", {"stage": 3, "offload_param": {"device": "auto", "pin_memory": "auto"}},
         ["zero_config.offload_param"]),
        ("auto_offload_opt_fields", {"stage": 3, "offload_optimizer": {"device": "cpu", "ratio": "auto",
                                                                        "buffer_count": "auto"}},
         ["zero_config.offload_optimizer"]),
        ("auto_zenflow", {"stage": 2, "zenflow": {"topk_ratio": "auto", "select_interval": "auto",
                                                  "full_warm_up_rounds": "auto"}}, ["zero_config.zenflow"]),
        ("auto_leaf_module", {"stage": 3, "leaf_module": "auto"}, ["zero_config.leaf_module"]),
        ("auto_leaf_classes", {"stage": 3, "leaf_module": {"classes": "auto", "names": "auto"}},
         ["zero_config.leaf_module"]),
        ("auto_stage3_knobs", {"stage": 3, "stage3_prefetch_bucket_size": "auto",
                               "stage3_param_persistence_threshold": "auto", "stage3_max_live_parameters": "auto",
                               "stage3_gather_16bit_weights_on_model_save": "auto", "sub_group_size": "auto"},
         ["zero_config.prefetch_bucket_size", "zero_config.param_persistence_threshold",
          "zero_config.max_live_parameters", "zero_config.gather_16bit_weights_on_model_save",
          "zero_config.sub_group_size"]),
        ("auto_upper", {"stage": 2, "reduce_bucket_size": "AUTO"}, ["zero_config.reduce_bucket_size"]),
        ("auto_cpu_offload", {"stage": 2, "cpu_offload": "auto"}, ["zero_config.offload_optimizer"]),
        ("stage_true", {"stage": True}, ["zero_config.stage"]),
        ("stage_2_0", {"stage": 2.0}, ["zero_config.stage"]),
        ("stage_null", {"stage": None}, ["zero_config.stage"]),
        ("stage_neg", {"stage": -1}, ["zero_config.stage"]),
        ("stage_1_5", {"stage": 1.5}, ["zero_config.stage"]),
        ("offload_param_null", {"stage": 3, "offload_param": None, "offload_optimizer": None},
         ["zero_config.offload_param", "zero_config.offload_optimizer"]),
        ("offload_optimizer_unknown_key", {"stage": 2, "offload_optimizer": {"device": "cpu", "pin_memroy": True}},
         ["zero_config.offload_optimizer"]),
        ("offload_param_unknown_key", {"stage": 3, "offload_param": {"device": "cpu", "ratio": 0.5}},
         ["zero_config.offload_param"]),
        ("zenflow_unknown_key", {"stage": 2, "zenflow": {"topk": 0.2}}, ["zero_config.zenflow"]),
        ("zenflow_null", {"stage": 2, "zenflow": None}, ["zero_config.zenflow"]),
        ("leaf_module_list", {"stage": 3, "leaf_module": ["my.Block"]}, ["zero_config.leaf_module"]),
        ("leaf_module_null", {"stage": 3, "leaf_module": None}, ["zero_config.leaf_module"]),
        ("nvme_path_trailing_slash", {"stage": 3, "offload_optimizer": {"device": "nvme", "nvme_path": "/local_nvme/"}},
         ["zero_config.offload_optimizer.nvme_path"]),
        ("nvme_path_empty", {"stage": 3, "offload_param": {"device": "nvme", "nvme_path": ""}},
         ["zero_config.offload_param.nvme_path"]),
        ("nvme_path_dot", {"stage": 3, "offload_param": {"device": "nvme", "nvme_path": "./nvme//swap"}},
         ["zero_config.offload_param.nvme_path"]),
        ("int_str_underscore", {"stage": 3, "reduce_bucket_size": "1_000", "stage3_max_live_parameters": "2_000_000"},
         ["zero_config.reduce_bucket_size", "zero_config.max_live_parameters"]),
        ("int_str_point_zero", {"stage": 3, "offload_param": {"device": "cpu", "buffer_count": "6.0"}},
         ["zero_config.offload_param.buffer_count"]),
        ("cpu_offload_null_with_new", {"stage": 2, "cpu_offload": None, "offload_optimizer": {"device": "cpu"}},
         ["zero_config.offload_optimizer"]),
        ("gather_fp16_null_with_new", {"stage": 3, "stage3_gather_fp16_weights_on_model_save": None,
                                       "gather_16bit_weights_on_model_save": True},
         ["zero_config.gather_16bit_weights_on_model_save"]),
        # DeepSpeedConfigModel drops every "auto" value before pydantic: not given, not unknown, no conflict
        ("gather_fp16_auto_with_new", {"stage": 3, "stage3_gather_fp16_weights_on_model_save": "auto",
                                       "stage3_gather_16bit_weights_on_model_save": True},
         ["zero_config.gather_16bit_weights_on_model_save"]),
        ("cpu_offload_auto_with_new", {"stage": 2, "cpu_offload": "auto", "offload_optimizer": {"device": "cpu"}},
         ["zero_config.offload_optimizer.device"]),
        ("cpu_offload_with_new_auto", {"stage": 2, "cpu_offload": True, "offload_optimizer": "auto"},
         ["zero_config.offload_optimizer.device"]),
        ("alias_auto_beside_value", {"stage": 3, "stage3_max_live_parameters": "auto", "max_live_parameters": 7},
         ["zero_config.max_live_parameters"]),
        ("value_beside_alias_auto", {"stage": 3, "stage3_max_live_parameters": 9, "max_live_parameters": "auto"},
         ["zero_config.max_live_parameters"]),
        ("alias_and_name_both", {"stage": 3, "stage3_max_live_parameters": 9, "max_live_parameters": 7},
         ["zero_config.max_live_parameters"]),
        ("unknown_key_auto", {"stage": 1, "no_such_key": "auto"}, ["zero_config.stage"]),
        ("offload_unknown_key_auto", {"stage": 3, "offload_param": {"device": "cpu", "no_such_key": "auto"}},
         ["zero_config.offload_param.device"]),
    ]
    for name, z, paths in edges:
        zero_case(f"zero_edge_{name}", z, paths, f"zero_optimization: {name.replace('_', ' ')}")
    section_edges = [
        ("zero_section_null", {"zero_optimization": None}),
        ("zero_section_auto", {"zero_optimization": "auto"}),
        ("zero_section_list", {"zero_optimization": []}),
        ("zero_section_int", {"zero_optimization": 1}),
        ("zero_section_false", {"zero_optimization": False}),
        ("zero_legacy_allgather_str", {"zero_optimization": True, "allgather_size": "1000"}),
        ("zero_legacy_allgather_neg", {"zero_optimization": True, "allgather_size": -1}),
        ("zero_legacy_allgather_float", {"zero_optimization": True, "allgather_size": 5e8}),
        ("allreduce_sum_deepcompile_str", {"gradient_allreduce_op": "sum", "zero_optimization": {"stage": 1},
                                           "compile": {"deepcompile": "true"}}),
        ("comm_dtype_auto", {"communication_data_type": "auto"}),
        ("allreduce_op_auto_z3", {"gradient_allreduce_op": "auto", "zero_optimization": {"stage": 3}}),
        ("allreduce_sum_zenflow_null", {"gradient_allreduce_op": "sum", "zero_optimization": {"stage": 2,
                                                                                             "zenflow": None}}),
        # batch resolution divides before it asserts; the dtype readers call .lower() on what they get
        ("micro_zero_with_tb", {"train_micro_batch_size_per_gpu": 0}),
        ("gas_zero_with_tb", {"gradient_accumulation_steps": 0}),
        ("micro_and_gas_zero_with_tb", {"train_micro_batch_size_per_gpu": 0, "gradient_accumulation_steps": 0}),
        ("comm_dtype_int", {"communication_data_type": 5}),
        ("seqcomm_dtype_bool", {"seq_parallel_communication_data_type": True}),
    ]
    for name, extra in section_edges:
        config = {"train_batch_size": 8, **extra}
        cases.append(ds_config_case(f"cfg_{name}_{i:03d}", config, 1,
                                    ["zero_config.stage", "zero_config.allgather_bucket_size", "gradient_allreduce_op"],
                                    f"config edge: {name.replace('_', ' ')}"))
        i += 1
    valued_edges = [  # (name, config keys, the attributes shown)
        ("seqcomm_dtype_null", {"seq_parallel_communication_data_type": None}, ["seq_parallel_communication_data_type"]),
        ("seqcomm_dtype_absent", {}, ["seq_parallel_communication_data_type"]),
        ("bf16_check_overflow_auto", {"bf16": {"enabled": True, "check_overflow": "auto"}}, ["bfloat16_config.enabled"]),
        ("fp16_unknown_key_auto", {"fp16": {"enabled": True, "loss_scal": "auto"}}, ["float16_config.enabled"]),
    ]
    for name, extra, paths in valued_edges:
        cases.append(ds_config_case(f"cfg_{name}_{i:03d}", {"train_batch_size": 8, **extra}, 1, paths,
                                    f"config edge: {name.replace('_', ' ')}"))
        i += 1
    return cases


# ----------------------------------------------------------------------------------------------
# optimizer wrapper

WRAP_NOTE = ("expect = what DeepSpeed's engine computes for this config: DeepSpeedConfig(<config as a JSON file>), then on a fake engine "
             "holding it engine._configure_basic_optimizer (engine.py:2085; DeepSpeed optimizer classes instantiated "
             "with a no-op __init__) and engine._do_optimizer_sanity_check (engine.py:1978-2023), apex amp stood in "
             "by a module object. Wrapper meanings as in cases-public.json: 'zero_optimization'=ZeRO optimizer, "
             "'bf16'=BF16_Optimizer, 'ddp_bf16'=FP16_UnfusedOptimizer in bf16 mode, 'fp16'=FP16_Optimizer/"
             "FP16_UnfusedOptimizer, 'amp'=apex amp, null=bare optimizer.")


def run_wrapper(config):
    cfg = config_from_file(config)
    eng = fake_engine(cfg)
    fake_amp = types.ModuleType("amp")
    fake_amp.__path__ = ["<stand-in for apex.amp>"]
    with stand_in_optimizers(), rank0(), mock.patch.object(E, "amp", fake_amp, create=True):
        basic = E.DeepSpeedEngine._configure_basic_optimizer(eng, model_params())
        return E.DeepSpeedEngine._do_optimizer_sanity_check(eng, basic)


def wrapper_case(cid, config, varied):
    case = {"id": cid, "kind": "optimizer_wrapper", "source": f"generated: {varied}", "world_size": 1, "config": config}
    try:
        case["expect"] = {"optimizer_wrapper": run_wrapper(config)}
    except Exception as e:
        case["expect"] = error_of(e)
    case["asserted_by_test"] = False
    case["note"] = WRAP_NOTE
    return case


def gen_wrappers(rng):
    cases = []
    opts = ["Adam", "AdamW", "Lamb", "OneBitAdam", "ZeroOneAdam", "OneBitLamb", "SGD", "Adagrad", "Lion"]
    for i in range(44):
        prec = rng.choice(["fp16", "bf16", "fp32", "fp32", "amp"]) if i % 11 else rng.choice(["fp16", "bf16", "fp32"])
        stage = rng.choice([0, 0, 1, 1, 2, 3])
        if prec == "amp" and rng.random() < 0.7:
            stage = 0
        opt = rng.choice(opts)
        gad = rng.choice([None, None, "fp32", "fp16", "bf16"])
        config = {"train_batch_size": 1}
        config["fp16"] = {"enabled": prec == "fp16"}
        config["bf16"] = {"enabled": prec == "bf16"}
        if prec == "bf16" and rng.random() < 0.5:
            config["bf16"]["immediate_grad_update"] = rng.choice([True, False])
        if prec == "amp" or rng.random() < 0.3:
            config["amp"] = {"enabled": prec == "amp"}
        if stage or rng.random() < 0.5:
            config["zero_optimization"] = {"stage": stage}
            if stage and rng.random() < 0.25:
                config["zero_optimization"]["offload_optimizer"] = {"device": "cpu"}
        if gad is not None or rng.random() < 0.3:
            config["data_types"] = {"grad_accum_dtype": gad}
        config["optimizer"] = {"type": opt, "params": {"lr": 0.001}}
        if stage and rng.random() < 0.4:
            config["zero_allow_untested_optimizer"] = rng.choice([True, False])
        cases.append(
            wrapper_case(f"wrap_{prec}_z{stage}_{opt.lower()}_{gad}_{i:03d}", config,
                         "precision mode, ZeRO stage, optimizer type, grad_accum_dtype"))

    def cfg(prec, stage, opt, gad, **extra):
        c = {"train_batch_size": 1, "fp16": {"enabled": prec == "fp16"}, "bf16": {"enabled": prec == "bf16"},
             "zero_optimization": {"stage": stage}, "optimizer": {"type": opt, "params": {"lr": 0.001}}}
        if gad is not None:
            c["data_types"] = {"grad_accum_dtype": gad}
        c.update(extra)
        return c

    edges = [
        ("bf16_z1_fp32_adam", cfg("bf16", 1, "Adam", "fp32")),
        ("bf16_z1_fp32_nvme_offload", cfg("bf16", 1, "Adam", "fp32", zero_optimization={
            "stage": 1, "offload_optimizer": {"device": "nvme", "nvme_path": "/local_nvme"}})),
        ("bf16_z1_fp32_cpu_offload", cfg("bf16", 1, "Adam", "fp32", zero_optimization={
            "stage": 1, "offload_optimizer": {"device": "cpu"}})),
        ("bf16_z2_fp32_adam", cfg("bf16", 2, "Adam", "fp32")),
        ("bf16_z0_bf16_adamw", cfg("bf16", 0, "AdamW", "bf16")),
        ("bf16_z0_immediate_update", cfg("bf16", 0, "Adam", None, bf16={"enabled": True, "immediate_grad_update": True})),
        ("fp16_z0_lamb", cfg("fp16", 0, "Lamb", None)),
        ("fp16_z2_sgd_untested_allowed", cfg("fp16", 2, "SGD", None, zero_allow_untested_optimizer=True)),
        ("fp16_z2_lamb_untested_refused", cfg("fp16", 2, "Lamb", None, zero_allow_untested_optimizer=False)),
        ("fp32_z1_bf16_accum", cfg("fp32", 1, "Adam", "bf16")),
        ("fp32_z3_fp16_accum_adagrad", cfg("fp32", 3, "Adagrad", "fp16")),
        ("fp16_bf16_both", cfg("fp16", 0, "Adam", None, bf16={"enabled": True})),
    ]
    for name, config in edges:
        cases.append(wrapper_case(f"wrap_edge_{name}_{len(cases):03d}", config, f"wrapper edge: {name.replace('_', ' ')}"))
    return cases


# ----------------------------------------------------------------------------------------------


def sanitized(cid):
    return "".join(ch if ch.isalnum() else "_" for ch in cid)


def check_ids(cases):
    names = [sanitized(c["id"]) for c in cases]
    assert len(set(c["id"] for c in cases)) == len(cases), "duplicate id"
    assert len(set(names)) == len(names), "ids collide once sanitised"
    ordered = sorted(names)
    for a, b in zip(ordered, ordered[1:]):
        assert not b.startswith(a), f"id {a} is a prefix of {b}"


COMPACT = ("steps", "momentum_beta0", "overflow_pattern", "expected_scales", "valid_gpus", "micro_batch_sizes")


def dump_cases(cases):
    """JSON list, indent=1, with the long per-step lists and maps each on one line."""
    parts = []
    for case in cases:
        slots = {}

        def compact(v):
            if isinstance(v, dict):
                for key in list(v):
                    if key in COMPACT:
                        token = f"@@{len(slots)}@@"
                        slots[token] = json.dumps(v[key], allow_nan=False)
                        v[key] = token
                    else:
                        compact(v[key])

        c = copy.deepcopy(case)
        compact(c)
        text = json.dumps(c, indent=1, allow_nan=False)
        for token, value in slots.items():
            text = text.replace(f'"{token}"', value)
        parts.append(text)
    text = "[\n" + ",\n".join(parts) + "\n]"
    assert json.loads(text) == cases
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", default=DEFAULT_OUT)
    ap.add_argument("--seed", type=int, default=20260)
    args = ap.parse_args()

    root = import_and_pin_deepspeed()
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    os.environ.pop("DEEPSPEED_ELASTICITY_CONFIG", None)

    cases = []
    for name, gen in [("scheduler", gen_schedulers), ("loss_scaler", gen_loss_scalers), ("elasticity", gen_elasticity),
                      ("ds_config", gen_ds_configs), ("optimizer_wrapper", gen_wrappers)]:
        # One stream per kind, so that changing one generator leaves the others' cases as they were.
        rng = random.Random(f"{args.seed}:{name}")
        cases += gen(rng)
        if name == "ds_config":
            # Added later, from a stream of their own: the cases above keep their draws.
            cases += gen_ds_configs_more(random.Random(f"{args.seed}:{name}:more"),
                                         sum(c["kind"] == "ds_config" for c in cases))
    check_ids(cases)
    text = dump_cases(cases)
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        f.write(text + "\n")
    counts = {}
    for c in cases:
        counts[c["kind"]] = counts.get(c["kind"], 0) + 1
    print(f"DeepSpeed {DS_VERSION} ({DS_COMMIT[:7]}) at {root}: wrote {len(cases)} cases "
          f"({', '.join(f'{k} {v}' for k, v in counts.items())}), {len(text) // 1024} KiB, to {args.output}")


if __name__ == "__main__":
    main()
