"""Writes the ONNX-text graphs of the pass golden tests (tests/passes/**, "# ----- input") and of the
gradient-check table (tests/autodiff/grad_cases.txt, "# ===== NAME") as small binary .onnx seeds for
fuzz_onnx_import: every op and attribute variant in a few hundred bytes each.

usage: onnx_text_seeds.py OUT_DIR FILE...
"""
import math
import os
import re
import sys

import onnx
import onnx.parser


def inputs_of(path):
    """The text of each "# ----- input" section in a golden file."""
    sections, current = [], None
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("# -----"):
                if current is not None:
                    sections.append("".join(current))
                current = [] if line.strip() == "# ----- input" else None
            elif current is not None:
                current.append(line)
    if current is not None:
        sections.append("".join(current))
    return sections


# The table's `TYPE[DIMS] NAME = ...` initializers get concrete values the parser accepts.
ELLIPSIS_INIT = re.compile(r"(\w+)\[([0-9, ]*)\](\s+[\w.]+\s*=\s*)\.\.\.")


def fill(match):
    dims = [int(d) for d in match.group(2).split(",") if d.strip()]
    n = math.prod(dims)
    value = "1" if match.group(1).startswith(("int", "uint", "bool")) else "0.5"
    return f"{match.group(1)}[{match.group(2)}]{match.group(3)}{{{', '.join([value] * n)}}}"


def grad_cases_of(path):
    """The graph of each "# ===== NAME" case, its `= ...` initializers filled in."""
    sections, current = [], None
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("# ====="):
                if current:
                    sections.append("".join(current))
                current = []
            elif current is not None and not line.startswith("#"):
                current.append(ELLIPSIS_INIT.sub(fill, line))
    if current:
        sections.append("".join(current))
    return sections


def main():
    out_dir, files = sys.argv[1], sys.argv[2:]
    written = 0
    for path in files:
        sections = grad_cases_of(path) if path.endswith("grad_cases.txt") else inputs_of(path)
        for i, text in enumerate(sections):
            try:
                model = onnx.parser.parse_model(text)
            except Exception:  # graphs in our own dialect the python parser does not take
                continue
            name = path.replace("/", "_").removesuffix(".txt") + f".{i}.onnx"
            with open(os.path.join(out_dir, name), "wb") as f:
                f.write(model.SerializeToString())
            written += 1
    print(f"onnx_text_seeds: {written} seeds from {len(files)} golden files")


if __name__ == "__main__":
    main()
