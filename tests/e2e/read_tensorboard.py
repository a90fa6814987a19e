"""Prints the scalars of a TensorBoard log folder as JSON, read with TensorBoard's own reader.

    read_tensorboard.py LOGDIR  ->  {"tag": [[step, value, wall_time], ...], ...}

Run with the python of scripts/install-tensorboard.sh (the monitor test does).
"""
import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main():
    acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})  # 0: keep every event
    acc.Reload()
    out = {tag: [[e.step, e.value, e.wall_time] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
