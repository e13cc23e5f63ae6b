#!/usr/bin/env python3
"""Where kwok's heap was at its peak, from a dhat profile (`dhat-heap.json`).

usage: dhat-peak.py dhat-heap.json [TOP]

Prints the allocation sites with the most bytes live at the global peak (dhat's `gb`),
each with the two library frames that allocated and the first three of ours (kwok_*),
so a site reads as "who asked, through what".
"""
import json
import sys


def short(frame: str) -> str:
    # "0x5f...: kwok_shards::shard::cache::Entry::set (shards/src/shard/cache.rs:120:21)"
    text = frame.split(": ", 1)[-1]
    return text if len(text) < 140 else text[:137] + "..."


def main() -> None:
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    with open(path) as f:
        profile = json.load(f)
    frames = profile["ftbl"]
    points = profile["pps"]
    total = sum(p.get("gb", 0) for p in points)
    print(f"live at peak: {total / 2**20:.1f} MiB in {sum(p.get('gbk', 0) for p in points):,} blocks"
          f" (t-gmax {profile.get('tg', 0) / 1e6:.1f} s)")
    points.sort(key=lambda p: p.get("gb", 0), reverse=True)
    for p in points[:top]:
        if not p.get("gb"):
            break
        names = [short(frames[i]) for i in p["fs"]]
        skip = ("alloc::", "<alloc::", "<dhat::", "dhat::", "[root]", "core::", "<core::", "__rust", "std::", "<std::")
        callers = [n for n in names if not n.startswith(skip)]
        ours = [i for i, n in enumerate(callers) if n.startswith(("kwok_", "<kwok_"))]
        # The library frames just above our first frame, then our first three.
        first = ours[0] if ours else min(len(callers), 3)
        shown = callers[max(0, first - 2):first] + [callers[i] for i in ours[:3]]
        print(f"\n{p['gb'] / 2**20:8.2f} MiB {p['gbk']:>9,} blocks")
        for n in shown or ["?"]:
            print(f"{'':4}{n}")


if __name__ == "__main__":
    main()
