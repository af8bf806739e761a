#!/usr/bin/env python3
"""Two or more ctstack builds on one stack, taking turns: an A/B test of a change.

usage: python3 benches/alternate.py STACK_DIR LABEL=BINARY [LABEL=BINARY ...]
                                    [--runs 9] [--cold] [--floor FLOOR_BINARY]

Each round runs every binary once (`BINARY pyramid STACK_DIR -o OUT -q`, the
output deleted and os.sync() called first, neither timed), in turn, so that a
machine that slows down or speeds up during the test affects all of them
alike; the first round is a warm-up and is not counted. With --cold the stack
is evicted from the page cache before every run (posix_fadvise DONTNEED).
--floor adds benches/floor.c's read floor (`FLOOR read 2 FILES`, as compiled by
compare.py into target/compare-bin/floor) as one more contender.

Prints, per contender, the median, the minimum and every run in seconds.
Build the binaries to compare first, e.g. `cargo build --release` on each
commit, copying target/release/ctstack aside each time. Wall time is measured
around the whole process with time.perf_counter(): use compare.py for the
figures of benches/results.md (peak RSS, fork-to-wait4 timing), this for quick A/B tests.
"""
import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time


def evict(files):
    os.sync()
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("stack")
    ap.add_argument("contenders", nargs="+", metavar="LABEL=BINARY")
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--cold", action="store_true")
    ap.add_argument("--floor")
    a = ap.parse_args()
    files = sorted(glob.glob(os.path.join(a.stack, "*.tif")))
    if not files:
        sys.exit(f"alternate: no .tif files in {a.stack}")
    contenders = []
    for spec in a.contenders:
        label, sep, binary = spec.partition("=")
        if not sep or not binary:
            sys.exit(f"alternate: {spec!r} is not LABEL=BINARY")
        contenders.append((label, [binary, "pyramid", a.stack, "-o", None, "-q"]))
    if a.floor:
        contenders.append(("floor", [a.floor, "read", "2", *files]))
    times = {label: [] for label, _ in contenders}
    with tempfile.TemporaryDirectory(prefix="ctstack-alternate-") as tmp:
        out = os.path.join(tmp, "out")
        for r in range(a.runs + 1):
            for label, cmd in contenders:
                cmd = [out if c is None else c for c in cmd]
                shutil.rmtree(out, ignore_errors=True)
                os.sync()
                if a.cold:
                    evict(files)
                t = time.perf_counter()
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                dt = time.perf_counter() - t
                if r > 0:
                    times[label].append(dt)
    mode = "cold" if a.cold else "warm"
    for label, ts in times.items():
        ts.sort()
        print(f"{mode} {label:14s} median {ts[len(ts) // 2]:.3f} min {ts[0]:.3f}  "
              + " ".join(f"{t:.3f}" for t in ts))


if __name__ == "__main__":
    main()
