#!/usr/bin/env python3
"""Where a function's CPU goes, from `perf script -F time,ip,sym` output.

usage: fold-stacks.py SCRIPT.txt ANCHOR [DEPTH]

Counts the samples whose stack holds a frame containing ANCHOR (a substring, e.g.
"Shard::fire"), and splits them by the DEPTH frames it called (outermost occurrence),
so "Shard::fire 2" reads as "fire spends N% in parsing, M% in spawning".

To split a run by time (e.g. cpu-profile.sh's creating vs deleting), give perf script
`--time START,END` in the clock perf recorded (its first sample is ~1 s before `t0`).
"""
import collections
import re
import sys


def samples(path):
    stack = []
    for line in open(path):
        line = line.rstrip()
        # A sample starts with its time ("  12345.678901: "), frames follow one per line.
        if not line or re.match(r"^\s*\d+\.\d+:", line):
            if stack:
                yield stack
            stack = []
            continue
        parts = line.strip().split(None, 1)
        if len(parts) == 2:
            stack.append(parts[1])
    if stack:
        yield stack


def short(frame):
    # Generic arguments and source locations make frames unreadable in one line.
    return re.sub(r"<.*?>|\(.*", "", frame)[:90]


def main():
    path, anchor = sys.argv[1], sys.argv[2]
    depth = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    total = hit = 0
    callees = collections.Counter()
    for stack in samples(path):
        total += 1
        found = [i for i, frame in enumerate(stack) if anchor in frame]
        if not found:
            continue
        hit += 1
        i = max(found)  # the leaf is stack[0]: the largest index is nearest the root
        path_ = tuple(short(f) for f in stack[max(0, i - depth):i][::-1]) or ("<self>",)
        callees[path_] += 1
    if not total:
        sys.exit(f"fold-stacks.py: no samples in {path}")
    print(f"total {total} samples, {anchor!r} in {hit} ({100 * hit / total:.1f}%)")
    for path_, n in callees.most_common(25):
        print(f"{n:7d} {100 * n / total:5.1f}%  " + " > ".join(path_))


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        pass
