#!/usr/bin/env python3
"""Runs a CMake build's tests with each GoogleTest binary's tests batched into a few processes.

ctest starts one process per GoogleTest case, and a start costs more than most cases (under ASan
the whole kernel-case binary runs its 878 cases in 0.2 s, ctest takes 90 s for them), so both
halves of the suite (scripts/test.sh, scripts/test-sanitize.sh) run them this way: every selected
case of a binary, split into at most -j processes, with -j processes at a time. The other tests (fuzz
runs, scripts, MPI launches) go through ctest first, as they need its properties (fixtures,
environment, locks, expected output). With --deadline (CI's limit, scripts/test-sanitize.sh), what
cannot finish by then is cut and listed rather than failed. Standard library only.
"""
import argparse
import concurrent.futures
import json
import os
import re
import signal
import subprocess
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build-dir", required=True, help="the configured and built CMake build directory")
    p.add_argument("-E", "--exclude", default="", help="ctest's -E: a regex on test names to leave out")
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1, help="processes at a time")
    p.add_argument("--timeout", type=int, default=1800, help="seconds one batch may run (default 1800)")
    p.add_argument("--deadline", type=float, default=None,
                   help="epoch second by which to stop: a batch not started by then is left out, one still "
                        "running is stopped, and both are reported as cut, not failed")
    return p.parse_args()


def seconds_left(deadline):
    return None if deadline is None else deadline - time.time()


# Process groups of the commands running now: each command runs in a group of its own so that a
# timeout stops all it started (ctest's tests, mpirun's ranks), which also keeps a Ctrl-C at the
# terminal from reaching them; stop_all passes it on.
_running = set()


def call(command, timeout, **kwargs):
    """Runs command, killing its whole process group on timeout."""
    proc = subprocess.Popen(command, start_new_session=True, **kwargs)
    _running.add(proc.pid)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    finally:
        _running.discard(proc.pid)


def stop_all(signum, _frame):
    for pgid in list(_running):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    sys.exit(128 + signum)


def gtest_name(command):
    for arg in command:
        if arg.startswith("--gtest_filter="):
            return arg[len("--gtest_filter="):]
    return None


def properties(test):
    return {p["name"]: p["value"] for p in test.get("properties", [])}


def run_ctest(build_dir, names, jobs, deadline=None):
    """Runs the named tests through ctest (exact names), returning its exit status, or None when
    the deadline stopped it."""
    if not names:
        return 0
    regex = "^(" + "|".join(re.escape(n) for n in names) + ")$"
    print(f"=== {len(names)} tests through ctest", flush=True)
    left = seconds_left(deadline)
    if left is not None and left <= 0:
        return None
    try:
        return call(["ctest", "--test-dir", build_dir, "--output-on-failure", f"-j{jobs}", "-R", regex], left)
    except subprocess.TimeoutExpired:
        return None


CUT = "cut by the deadline"


def run_batch(batch, log_dir, timeout, deadline):
    (binary, cwd, extra), index, cases = batch
    log = os.path.join(log_dir, f"{os.path.basename(binary)}.{index}.log")
    start = time.monotonic()
    left = seconds_left(deadline)
    if left is not None and left <= 0:
        return batch, log, CUT, 0.0
    cut = left is not None and left < timeout
    with open(log, "w") as out:
        try:
            rc = call([binary, "--gtest_filter=" + ":".join(cases), *extra], min(timeout, left) if cut else timeout,
                      cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        except subprocess.TimeoutExpired:
            rc = CUT if cut else f"timeout after {timeout} s"
        except OSError as e:
            print(f"could not start {binary}: {e}", file=out)
            rc = "not started"
    return batch, log, rc, time.monotonic() - start


def report_failure(batch, log, rc):
    (binary, _, _), index, cases = batch
    with open(log, errors="replace") as f:
        text = f.read()
    failed = sorted(set(re.findall(r"^\[  FAILED  \] (\S+?)(?:,| \(|$)", text, re.M)))
    started = re.findall(r"^\[ RUN      \] (\S+)", text, re.M)
    done = set(re.findall(r"^\[ {7}OK \] (\S+)|^\[  FAILED  \] (\S+)|^\[  SKIPPED \] (\S+)", text, re.M))
    done = {n for group in done for n in group if n}
    summary = [f"FAILED: {os.path.basename(binary)} batch {index} ({len(cases)} tests, exit {rc}); log {log}"]
    if failed:
        summary.append("  failed tests: " + " ".join(failed))
    culprits = list(failed)
    if started and started[-1] not in done:
        summary.append(f"  stopped inside: {started[-1]} (a sanitizer report, a crash or the timeout)")
        culprits.append(started[-1])
    print("=== " + "\n".join(summary))
    tail = text.splitlines()[-120:]
    print("  --- the log's last lines:")
    print("\n".join("  " + line for line in tail), flush=True)
    return culprits, summary


def main():
    args = parse_args()
    signal.signal(signal.SIGINT, stop_all)
    signal.signal(signal.SIGTERM, stop_all)
    build_dir = os.path.abspath(args.build_dir)
    listing = subprocess.run(["ctest", "--test-dir", build_dir, "--show-only=json-v1"],
                             check=True, capture_output=True, text=True).stdout
    exclude = re.compile(args.exclude) if args.exclude else None
    others, batches_by_binary, ctest_names, skipped = [], {}, {}, 0
    for test in json.loads(listing)["tests"]:
        name, props = test["name"], properties(test)
        if (exclude and exclude.search(name)) or props.get("DISABLED"):
            skipped += 1
            continue
        case = gtest_name(test.get("command", []))
        plain = case and not any(k in props for k in ("ENVIRONMENT", "RESOURCE_LOCK", "RUN_SERIAL",
                                                        "PASS_REGULAR_EXPRESSION", "WILL_FAIL"))
        if plain:
            command = test["command"]
            extra = tuple(a for a in command[1:] if not a.startswith("--gtest_filter="))
            key = (command[0], props.get("WORKING_DIRECTORY", build_dir), extra)
            batches_by_binary.setdefault(key, []).append(case)
            ctest_names[case] = name
        else:
            others.append(name)

    # Fixture set-ups (export_unseen_models) are among the ctest-run tests; they run first.
    ctest_rc = run_ctest(build_dir, others, args.jobs, args.deadline)
    status = 1 if ctest_rc else 0

    log_dir = os.path.join(build_dir, "Testing", "batched")
    os.makedirs(log_dir, exist_ok=True)
    for old in os.listdir(log_dir):
        os.remove(os.path.join(log_dir, old))
    batches = []
    for key, cases in batches_by_binary.items():
        parts = max(1, min(args.jobs, len(cases) // 8))
        for i in range(parts):
            batches.append((key, i, cases[i::parts]))
    batches.sort(key=lambda b: -len(b[2]))
    total = sum(len(b[2]) for b in batches)
    print(f"=== {total} GoogleTest cases of {len(batches_by_binary)} binaries in {len(batches)} processes, "
          f"{args.jobs} at a time ({skipped} tests left out)", flush=True)
    failures, rerun, summary, cut, start = 0, [], [], [], time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        running = [pool.submit(run_batch, b, log_dir, args.timeout, args.deadline) for b in batches]
        for done in concurrent.futures.as_completed(running):
            batch, log, rc, secs = done.result()
            if rc == CUT:
                cut.append(batch)
            elif rc != 0:
                failures += 1
                culprits, lines = report_failure(batch, log, rc)
                rerun += culprits
                summary += lines
            elif secs > 60:
                print(f"  {os.path.basename(batch[0][0])} batch {batch[1]}: {len(batch[2])} tests, {secs:.0f} s",
                      flush=True)
    print(f"=== GoogleTest batches: {len(batches) - failures - len(cut)} of {len(batches)} passed in "
          f"{time.monotonic() - start:.0f} s", flush=True)
    if ctest_rc is None or cut:
        # Not a failure: what ran passed or failed on its own; the rest did not fit in CI's time.
        names = sorted({os.path.basename(b[0][0]) for b in cut})
        print("=== cut by the deadline: " + ("the tests run through ctest were stopped (its lines above show "
              "which had passed); " if ctest_rc is None else "") + f"{len(cut)} of {len(batches)} batches "
              f"({sum(len(b[2]) for b in cut)} cases) did not run or finish, of " +
              (", ".join(names) if len(names) <= 12 else ", ".join(names[:12]) + f" and {len(names) - 12} more"),
              flush=True)
    if status:
        summary.append("FAILED: some of the tests run through ctest (see ctest's report above)")
    # scripts/test.sh prints this at the very end, where a CI log's tail shows it.
    with open(os.path.join(log_dir, "summary.txt"), "w") as f:
        f.write("\n".join(summary) + "\n" if summary else "")
    if rerun:
        # Alone, in a process of its own, a failure tells whether it needs the tests before it in
        # its batch (an interaction) or fails by itself. The status stays failed either way.
        print("=== the failed tests once more, each alone:", flush=True)
        run_ctest(build_dir, sorted({ctest_names[c] for c in rerun if c in ctest_names}), args.jobs, args.deadline)
    return 1 if failures or status else 0


if __name__ == "__main__":
    sys.exit(main())
