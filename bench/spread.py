#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Spread of the bench ratios over several runs of bench/run-bench.py.

    spread.py --runs N --failed F results1.json results2.json ...

Prints a Markdown table: for each ratio its minimum, median and maximum
over the runs given, and how many runs met the target.
"""

import argparse
import json
import sys

# (name, path into results.json, target, met(value))
RATIOS = [
    ("copy bandwidth, window / local", ("copy", "ratio"), ">= 0.95",
     lambda v: v >= 0.95),
    ("doorbell p50 / ivshmem", ("doorbell", "ratio_p50"), "<= 1.0",
     lambda v: v <= 1.0),
    ("doorbell p99 / ivshmem", ("doorbell", "ratio_p99"), "<= 1.0",
     lambda v: v <= 1.0),
    ("doorbell 8-byte p50 / ivshmem", ("doorbell", "ratio8_p50"), "<= 1.0",
     lambda v: v <= 1.0),
    ("doorbell 8-byte p99 / ivshmem", ("doorbell", "ratio8_p99"), "<= 1.0",
     lambda v: v <= 1.0),
    ("forwarded read p50 / unix floor, MMIO target",
     ("floor", "forwarded_read_p50_over_unix_p50"), "<= 3.0",
     lambda v: v <= 3.0),
    ("forwarded read p50 / unix floor, RAM target",
     ("floor", "forwarded_ram_read_p50_over_unix_p50"), "<= 3.0",
     lambda v: v <= 3.0),
    ("doorbell p50 / eventfd floor",
     ("floor", "doorbell_p50_over_eventfd_p50"), "(reported)",
     lambda v: True),
    ("host side: library forwarded read / unix floor, RAM target",
     ("host_side", "ram_over_unix"), "<= 2.0", lambda v: v <= 2.0),
    ("host side: library forwarded read / unix floor, MMIO target",
     ("host_side", "mmio_over_unix"), "(reported)", lambda v: True),
    ("host side: dump / host copy to a file",
     ("host_side", "dump_over_copy"), ">= 0.8", lambda v: v >= 0.8),
    ("host side: dump / QMP pmemsave",
     ("host_side", "dump_over_pmemsave"), "(reported)", lambda v: True),
]


def get(r, path):
    for key in path:
        r = r[key]
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--failed", type=int, required=True)
    ap.add_argument("results", nargs="*")
    args = ap.parse_args()
    runs = []
    for path in args.results:
        with open(path) as f:
            runs.append(json.load(f))
    print("%d runs, %d failed, %d measured" % (args.runs, args.failed,
                                                len(runs)))
    print()
    if not runs:
        return 1
    print("| ratio | min | median | max | target | runs meeting it |")
    print("| --- | ---: | ---: | ---: | --- | ---: |")
    for name, path, target, met in RATIOS:
        vals = sorted(get(r, path) for r in runs)
        mid = vals[len(vals) // 2] if len(vals) % 2 else \
            (vals[len(vals) // 2 - 1] + vals[len(vals) // 2]) / 2
        print("| %s | %.2f | %.2f | %.2f | %s | %d of %d |"
              % (name, vals[0], mid, vals[-1], target,
                 sum(1 for v in vals if met(v)), len(vals)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
