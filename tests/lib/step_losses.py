#!/usr/bin/env python3
"""Prints "step loss grad_norm" for every step of an aoetron-train metrics file (JSON lines),
the last line logged for each step (a resumed run logs the steps after its checkpoint again),
loss and norm as repr() of the float: exact, for bit-for-bit comparisons with diff.

    step_losses.py METRICS_JSONL
"""
import json
import sys

rows = {}
with open(sys.argv[1]) as metrics:
    for line in metrics:
        if line.strip():
            record = json.loads(line)
            rows[record["step"]] = (repr(record["loss"]), repr(record["grad_norm"]))
for step in sorted(rows):
    print(step, *rows[step])
