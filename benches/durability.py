#!/usr/bin/env python3
"""What syncing before recording costs: two ctstack binaries, the same pyramid, turns.

usage: python3 benches/durability.py --before BIN --after BIN [--stack DIR] [--runs 21]
                                     [--tail-runs 7] [--job pyramid|zarr] [--compression C]

Builds the pyramid of --stack (default /tmp/bench64: `python ../shared/tools/make_stack.py
/tmp/bench64 -n 64`, 64 x 2752x2752 uint16) with each binary in turn, --runs rounds after one
warm-up each (inputs in the page cache, `--force` so every output is rewritten, `sync` before
each run, not timed), every run a whole process timed from spawn to exit. Prints each binary's
median and minimum, the ratio of the medians (after / before) and the median of the per-round
ratios.

With --job zarr the job is `ctstack zarr` (zstd level 3 unless --compression says otherwise; the command's own default is Blosc) into a store removed before each
run (not timed), so that every chunk is written and synced again (--compression: the store's codec,
`zstd` by default, `none` writes the most bytes); --tail-runs is then ignored.

With --tail-runs > 0 (needs strace) it also runs each binary under `strace -f -ttt` and prints
the median time from the last output's rename to the manifest's rename: the wait that syncing
adds after the last output is written (the syncs before it overlap the work).
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


JOB = "pyramid"
COMPRESSION = "zstd"


def prepare(binary, stack, out):
    """One run, untimed preparation included: a zarr store is removed first."""
    if JOB == "zarr":
        shutil.rmtree(out, ignore_errors=True)
        command = [binary, "zarr", stack, "--out", out, "-q", "--compression", COMPRESSION]
    else:
        command = [binary, "pyramid", stack, "--out", out, "--force", "-q"]
    return command


def timed(binary, stack, out):
    command = prepare(binary, stack, out)
    os.sync()
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def tail(binary, stack, out, log):
    os.sync()
    subprocess.run(
        ["strace", "-f", "-qq", "-ttt", "-e", "trace=rename,renameat,renameat2", "-o", log,
         binary, "pyramid", stack, "--out", out, "--force", "-q"],
        check=True,
    )
    last_output = manifest = None
    for line in open(log):
        m = re.match(r'\d+\s+([\d.]+) rename\w*\(.*"([^"]+)"\)', line)
        if not m:
            continue
        t, to = float(m.group(1)), m.group(2)
        if to.endswith(".tif"):
            last_output = t
        elif to.endswith("ctstack.json"):
            manifest = t
    return manifest - last_output


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--stack", default="/tmp/bench64")
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--tail-runs", type=int, default=7)
    ap.add_argument("--job", choices=["pyramid", "zarr"], default="pyramid")
    ap.add_argument("--compression", default="zstd")
    args = ap.parse_args()
    global JOB, COMPRESSION
    JOB, COMPRESSION = args.job, args.compression
    work = tempfile.mkdtemp(prefix="ctstack-durability-")
    bins = {"before": args.before, "after": args.after}
    outs = {k: os.path.join(work, k) for k in bins}
    times = {k: [] for k in bins}
    try:
        print("load average at start: %.2f %.2f %.2f" % os.getloadavg())
        for k, b in bins.items():
            subprocess.run(prepare(b, args.stack, outs[k]), check=True)  # warm-up
        for _ in range(args.runs):
            for k, b in bins.items():
                times[k].append(timed(b, args.stack, outs[k]))
        for k in bins:
            v = times[k]
            print("%-6s median %.3f s  min %.3f s  (%d runs)" % (k, statistics.median(v), min(v), len(v)))
        ratio = statistics.median(times["after"]) / statistics.median(times["before"])
        rounds = statistics.median(a / b for a, b in zip(times["after"], times["before"]))
        print("after / before: ratio of medians %.3f, median per-round ratio %.3f" % (ratio, rounds))
        if args.tail_runs > 0 and JOB == "pyramid" and shutil.which("strace"):
            log = os.path.join(work, "trace.log")
            for k, b in bins.items():
                v = [tail(b, args.stack, outs[k], log) for _ in range(args.tail_runs)]
                print("%-6s last output rename -> manifest rename: median %.1f ms" % (k, 1000 * statistics.median(v)))
        print("load average at end: %.2f %.2f %.2f" % os.getloadavg())
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
