#!/usr/bin/env python3
"""Every benchmark of issue 31's table, one after another, in one command.

usage: python benches/all.py [--runs 5] [--quick] [--skip-build] [--steps 1,2,...]

Run it with a Python that has numpy, tifffile, imagecodecs, Pillow, dask, zarr>=3,
ngff-zarr and ome-zarr (/work/venv on the project's VMs). It runs
`cargo build --release` (unless --skip-build), then, in this order, each writing
its own block of benches/results.md:

1. compare.py --cold --lzw: the pyramid, warm and cold (inputs evicted before
   each run), against the read and read+write floors and the Python peers, on
   the uncompressed, 8-bit and LZW stacks;
2. crop.py --cold --lzw: the crop against its floor and peers;
3. zarr_peers.py: `ctstack zarr` (zstd and none) against ngff-zarr and
   ome-zarr-py at their default codecs, same chunks;
4. zarr_codecs.py: `ctstack zarr` with each chunk codec, time and size, on the
   phantom and a noisier stack (it arrives with the Blosc codecs: until then
   the step is skipped, and the block says so);
5. compressed.py: decoding Deflate, LZW, ZSTD and PackBits stacks against
   tifffile + imagecodecs.

Above them it writes the machine (CPU model, cores, the disk under the work
folder: its device, model and whether it rotates, the kernel) and the load
average before and after, into the all.py block of benches/results.md, with the
wall time of each step. --quick runs each with fewer slices and runs, to check
the command works (its figures are not for the table).

--steps runs only the steps listed (numbers above), so that the steps can be
split over quiet windows: the block keeps the rows of the steps not run, with
their dates.

Each step's contenders are interleaved within that step; the steps themselves
run one after another, so compare rows of one step, not across steps, when the
load changes between them (the block says the load at each step's start).
"""
import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from machine import cpu_model  # benches/machine.py

ROOT = Path(__file__).resolve().parent.parent
BENCHES = ROOT / "benches"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def disk_of(path):
    """The block device under `path`, its model and whether it rotates (Linux)."""
    try:
        dev = os.stat(path).st_dev
        major, minor = os.major(dev), os.minor(dev)
        sys_dev = Path(f"/sys/dev/block/{major}:{minor}").resolve()
        disk = sys_dev if (sys_dev / "queue").exists() else sys_dev.parent
        name = disk.name
        model = (disk / "device" / "model").read_text().strip() if (
            disk / "device" / "model").exists() else "?"
        rotational = (disk / "queue" / "rotational").read_text().strip()
        return f"/dev/{name} (model {model}, {'rotating' if rotational == '1' else 'not rotating'})"
    except OSError:
        return "?"


def machine(workdir):
    return (f"CPU {cpu_model()}, {os.cpu_count()} cores; disk {disk_of(workdir)}; "
            f"{platform.system()} {platform.release()}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--skip-build", action="store_true")
    p.add_argument("--out-md", default=str(BENCHES / "results.md"))
    p.add_argument("--steps", default="1,2,3,4,5",
                   help="the steps to run, by number (default all)")
    a = p.parse_args(argv)
    chosen = {int(x) for x in a.steps.split(",") if x.strip()}
    py = sys.executable
    work = ROOT / "target" / "compare-data"
    work.mkdir(parents=True, exist_ok=True)
    if not a.skip_build:
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
    runs = "2" if a.quick else str(a.runs)
    slices = "8" if a.quick else "64"
    # compare.py runs in its own venv (target/compare-venv, made and filled by pip
    # on its first run) unless this Python has its peers' packages too.
    import importlib.util
    own = all(importlib.util.find_spec(m) for m in ("tinybrain", "matplotlib", "PIL"))
    compare_venv = ["--skip-setup", "--venv", str(Path(sys.prefix))] if own else (
        ["--skip-setup"] if a.skip_build else [])
    steps = [
        ("pyramid, warm and cold (compare.py)",
         [py, str(BENCHES / "compare.py"), "--cold", "--lzw", "--runs", runs, "--slices", slices,
          *compare_venv, "--out-md", a.out_md]),
        ("crop (crop.py)",
         [py, str(BENCHES / "crop.py"), "--cold", "--lzw", "--runs", runs, "--skip-build",
          "--out-md", a.out_md]),
        ("OME-Zarr against the peers (zarr_peers.py)",
         [py, str(BENCHES / "zarr_peers.py"), str(ROOT / "target" / "release" / "ctstack"),
          str(work / "raw"), str(ROOT / "target" / "zarr-peers"), "-n", slices,
          "--out-md", a.out_md]),
        ("OME-Zarr chunk codecs (zarr_codecs.py)",
         [py, str(BENCHES / "zarr_codecs.py"), "--runs", "1" if a.quick else "3",
          "--slices", "8" if a.quick else "32", "--out-md", a.out_md]),
        ("compressed inputs (compressed.py)",
         [py, str(BENCHES / "compressed.py"), "--runs", runs, "--slices",
          "4" if a.quick else "16", "--out-md", a.out_md]),
    ]
    begin, end = "<!-- all.py begin -->", "<!-- all.py end -->"
    md = Path(a.out_md)
    kept = {}  # step name -> its row from an earlier run, for steps not run now
    text = md.read_text()  # read again below, after the steps wrote their blocks
    if begin in text and end in text:
        for row in text.split(begin, 1)[1].split(end, 1)[0].splitlines():
            cells = [c.strip() for c in row.strip().strip("|").split("|")]
            if len(cells) == 5 and cells[0].isdigit():
                kept[int(cells[0])] = row
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows = {}
    for number, (name, cmd) in enumerate(steps, 1):
        if number not in chosen:
            continue
        load = " ".join("%.2f" % x for x in os.getloadavg())
        script = Path(cmd[1])
        if not script.exists():
            log(f"== {name}: skipped, no {script.relative_to(ROOT)} in this checkout")
            rows[number] = (f"| {number} | {name}: skipped, no {script.relative_to(ROOT)} "
                            f"in this checkout | {date} | {load} | - |")
            continue
        log(f"== {name}")
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT)
        dt = time.perf_counter() - t0
        status = "" if done.returncode == 0 else f" (failed: exit {done.returncode})"
        rows[number] = f"| {number} | {name}{status} | {date} | {load} | {dt:.0f} |"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip() or "?"
    lines = [f"`python benches/all.py --runs {a.runs}{' --quick' if a.quick else ''}` "
             f"(steps may run in separate quiet windows: `--steps`), last at ctstack commit "
             f"{commit}: {machine(work)}.", ""]
    lines += ["| step | what | run at | load average at its start | wall s |",
              "|---|---|---|---|---|"]
    for number in range(1, len(steps) + 1):
        if number in rows:
            lines.append(rows[number])
        elif number in kept:
            lines.append(kept[number])
    lines.append(f"\nLoad average at the end of the last run: "
                 f"{' '.join('%.2f' % x for x in os.getloadavg())}.")
    table = "\n".join(lines)
    print(table)
    text = md.read_text()
    block = f"{begin}\n{table}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## All of issue 31's benchmarks (benches/all.py)\n\n" + block + "\n"
    md.write_text(text)


if __name__ == "__main__":
    main()
