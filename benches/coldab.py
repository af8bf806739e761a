#!/usr/bin/env python3
"""Cold A/B sets of ctstack pyramid variants, interleaved, with the disk's counters.

usage: python3 benches/coldab.py STACK_DIR --floor FLOOR [--sets 6] [--rounds 5] [--warm]
                                 [--fresh] [--args '--min-size 16'] [--log RUNS.jsonl]
                                 LABEL=[ENV=VAL,...:]BINARY ...

FLOOR is benches/floor.c compiled (`cc -O2 -pthread benches/floor.c -o floor`, or
compare.py's target/compare-bin/floor).
A set is `--rounds` rounds; a round runs every contender once, in an order
rotated from round to round, each run cold: the previous output removed,
os.sync(), the stack evicted (posix_fadvise DONTNEED) and checked evicted with
`FLOOR resident` (a run whose stack is more than 1 % resident is refused).
Contender `floor` (`FLOOR read 2 FILES`) is always added. Prints per set the
median of every contender and its ratio to the floor's median of the set, then
the medians over sets; per run /sys/block/vda/stat's deltas (read and write
requests, MB, the disk's read, write, flush and busy times) and the child's user and
system CPU time go to --log as JSON lines. --warm skips the eviction; --fresh writes
each run into a new folder (none removed until the end).
"""
import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import alternate  # noqa: E402  (benches/alternate.py: its eviction)

DISK = "/sys/block/vda/stat"


def disk():
    try:
        with open(DISK) as f:
            v = [int(x) for x in f.read().split()]
    except OSError:
        return None
    return v


def delta(a, b):
    if a is None or b is None:
        return {}
    d = [y - x for x, y in zip(a, b)]
    return {"r_ios": d[0], "r_mb": d[2] * 512 / 1e6, "r_ms": d[3], "w_ios": d[4],
            "w_mb": d[6] * 512 / 1e6, "w_ms": d[7], "busy_ms": d[9],
            "flush": d[15] if len(d) > 15 else None, "flush_ms": d[16] if len(d) > 16 else None}


def evict(files, floor):
    """alternate.py's eviction, checked: fails if more than 1% of the stack is still resident."""
    alternate.evict(files)
    resident = float(subprocess.run([floor, "resident", *files], check=True,
                                    capture_output=True, text=True).stdout)
    if resident > 0.01:
        sys.exit(f"coldab: {resident:.1%} of the stack still resident after eviction")
    return resident


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("stack")
    ap.add_argument("contenders", nargs="+")
    ap.add_argument("--floor", required=True)
    ap.add_argument("--sets", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--log")
    ap.add_argument("--args", default="", help="more arguments for `ctstack pyramid`, e.g. '--min-size 16'")
    ap.add_argument("--warm", action="store_true", help="no eviction (warm A/B)")
    ap.add_argument("--fresh", action="store_true",
                    help="each run into a new folder, all removed at the end (no deletion between runs)")
    a = ap.parse_args()
    files = sorted(glob.glob(os.path.join(a.stack, "*.tif")))
    contenders = []
    for spec in a.contenders:
        label, _, rest = spec.partition("=")
        env = dict(os.environ)
        if ":" in rest:
            envs, _, binary = rest.rpartition(":")
            for kv in envs.split(","):
                k, _, v = kv.partition("=")
                env[k] = v
        else:
            binary = rest
        contenders.append((label, env, [binary, "pyramid", a.stack, "-o", None, "-q", *a.args.split()]))
    contenders.append(("floor", dict(os.environ), [a.floor, "read", "2", *files]))
    log = open(a.log, "a") if a.log else None
    per_set = []
    with tempfile.TemporaryDirectory(prefix="ctstack-coldab-", dir="/tmp") as tmp:
        out = os.path.join(tmp, "out")
        # One warm-up run each (not counted).
        for label, env, cmd in contenders:
            shutil.rmtree(out, ignore_errors=True)
            subprocess.run([out if c is None else c for c in cmd], env=env, check=True,
                           stdout=subprocess.DEVNULL)
        for s in range(a.sets):
            times = {label: [] for label, _, _ in contenders}
            for r in range(a.rounds):
                k = (s * a.rounds + r) % len(contenders)
                for label, env, cmd in contenders[k:] + contenders[:k]:
                    if a.fresh:
                        out = os.path.join(tmp, f"out-{s}-{r}-{label}")
                    shutil.rmtree(out, ignore_errors=True)
                    os.sync()
                    if not a.warm:
                        evict(files, a.floor)
                    load = os.getloadavg()[0]
                    d0 = disk()
                    t = time.perf_counter()
                    child = subprocess.Popen([out if c is None else c for c in cmd], env=env,
                                             stdout=subprocess.DEVNULL)
                    _, status, ru = os.wait4(child.pid, 0)
                    dt = time.perf_counter() - t
                    d1 = disk()
                    child.returncode = os.waitstatus_to_exitcode(status)
                    if child.returncode != 0:
                        sys.exit(f"coldab: {label} failed ({child.returncode})")
                    times[label].append(dt)
                    if log:
                        log.write(json.dumps({"set": s, "round": r, "label": label,
                                              "s": round(dt, 4), "load": load,
                                              "user": ru.ru_utime, "sys": ru.ru_stime,
                                              **delta(d0, d1)}) + "\n")
                        log.flush()
            med = {l: statistics.median(t) for l, t in times.items()}
            per_set.append(med)
            fl = med["floor"]
            print(f"set {s + 1} (load {os.getloadavg()[0]:.2f}): " + ", ".join(
                f"{l} {m:.3f} ({m / fl:.2f}x)" for l, m in med.items()), flush=True)
    print("medians over sets:")
    for label, _, _ in contenders:
        ms = [m[label] for m in per_set]
        rs = [m[label] / m["floor"] for m in per_set]
        print(f"  {label:16s} {statistics.median(ms):.3f} s, {statistics.median(rs):.2f}x floor "
              f"(sets {min(rs):.2f}-{max(rs):.2f}x)")


if __name__ == "__main__":
    main()
