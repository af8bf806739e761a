#!/usr/bin/env python3
"""One run each: a TIFF stack to an OME-Zarr pyramid by ctstack, ngff-zarr and
ome-zarr-py, same chunks (16, 256, 256), same levels (3 halvings), on the
stack's first N slices; wall time and peak RSS of the whole process (from
/usr/bin/time), and each store's size on disk and level-0 codecs.

usage: zarr_peers.py CTSTACK_BINARY STACK_DIR WORK_DIR [-n 64] [--runs 1] [--out-md FILE]
       (run with a Python that has numpy, tifffile, dask, zarr>=3, ngff-zarr, ome-zarr)

The peers read the slices with tifffile into a dask array chunked as the store
(one task per chunk-deep band of slices), as their documentation does for a
TIFF series; ngff-zarr downsamples with DASK_BIN_SHRINK (its mean), ome-zarr-py
with Methods.LOCAL_MEAN (a 2x2x2 mean for 3-D zyx data, scale_factors 2, 4, 8).
Each writes its library's default compression (printed); ctstack is run with
its default (blosc-lz4-bitshuffle), zstd level 3 and none. With --runs R the
five writers take turns R times (interleaved, so a change in the machine's load
touches all of them); the table gives medians and each writer's time over
ctstack's default in the same round. With --out-md the table also goes into
FILE between its zarr_peers.py markers (benches/results.md), as compare.py's
and crop.py's do.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from machine import cpu_model  # benches/machine.py

NGFF_ZARR = """
import sys, glob, dask, dask.array as da, tifffile, numpy as np
import ngff_zarr as nz
files = sorted(glob.glob(sys.argv[1] + "/*.tif"))[: int(sys.argv[3])]
first = tifffile.imread(files[0])
bands = [da.from_delayed(dask.delayed(lambda fs: np.stack([tifffile.imread(f) for f in fs]))(files[i:i + 16]),
                         shape=(len(files[i:i + 16]),) + first.shape, dtype=first.dtype)
         for i in range(0, len(files), 16)]
arr = da.concatenate(bands).rechunk((16, 256, 256))
image = nz.to_ngff_image(arr, dims=["z", "y", "x"])
ms = nz.to_multiscales(image, scale_factors=[2, 4, 8], method=nz.Methods.DASK_BIN_SHRINK, chunks=(16, 256, 256))
nz.to_ngff_zarr(sys.argv[2], ms)
"""

OME_ZARR = """
import sys, glob, dask, dask.array as da, tifffile, numpy as np, zarr
from ome_zarr.writer import write_image
from ome_zarr.scale import Methods
files = sorted(glob.glob(sys.argv[1] + "/*.tif"))[: int(sys.argv[3])]
first = tifffile.imread(files[0])
bands = [da.from_delayed(dask.delayed(lambda fs: np.stack([tifffile.imread(f) for f in fs]))(files[i:i + 16]),
                         shape=(len(files[i:i + 16]),) + first.shape, dtype=first.dtype)
         for i in range(0, len(files), 16)]
arr = da.concatenate(bands).rechunk((16, 256, 256))
group = zarr.open_group(sys.argv[2], mode="w")
write_image(arr, group, axes="zyx", scale_factors=(2, 4, 8), method=Methods.LOCAL_MEAN,
            storage_options=dict(chunks=(16, 256, 256)))
"""


def du(path):
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def codecs(store):
    """The codecs (v3) or compressor (v2) of the store's largest array."""
    best = (-1, "?")
    for p in Path(store).rglob("*"):
        if p.name not in ("zarr.json", ".zarray"):
            continue
        doc = json.loads(p.read_text())
        if "shape" not in doc:
            continue
        size = 1
        for n in doc["shape"]:
            size *= n
        best = max(best, (size, json.dumps(doc.get("codecs") or doc.get("compressor"))))
    return best[1]


def run(cmd, store):
    """One run of `cmd` writing `store` (deleted and synced first): (wall s,
    peak RSS MB, store MB, codecs), or the error's last line."""
    shutil.rmtree(store, ignore_errors=True)
    os.sync()
    timing = Path(str(store) + ".time")
    r = subprocess.run(
        ["/usr/bin/time", "-f", "%e %M", "-o", str(timing), *cmd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if r.returncode != 0:
        return "failed: %s" % r.stderr.strip().splitlines()[-1:]
    wall, rss_kib = timing.read_text().split()[-2:]
    return float(wall), int(rss_kib) / 1024, du(store) / 1e6, codecs(store)


def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def main():
    p = argparse.ArgumentParser()
    p.add_argument("ctstack")
    p.add_argument("stack")
    p.add_argument("work")
    p.add_argument("-n", type=int, default=64)
    p.add_argument("--runs", type=int, default=1, help="rounds; each runs every writer once, in turn")
    p.add_argument("--out-md", help="also write the table into this page's zarr_peers.py block")
    a = p.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    base = [a.ctstack, "zarr", a.stack, "--range", f"0:{a.n - 1}", "--chunks", "16,256,256", "-q"]
    writers = [
        ("ctstack zarr (default: blosc-lz4-bitshuffle)", base + ["--out", str(work / "ctstack.ome.zarr")],
         work / "ctstack.ome.zarr"),
        ("ctstack zarr --compression zstd:3",
         base + ["--compression", "zstd:3", "--out", str(work / "ctstack-zstd.ome.zarr")],
         work / "ctstack-zstd.ome.zarr"),
        ("ctstack zarr --compression none",
         base + ["--compression", "none", "--out", str(work / "ctstack-raw.ome.zarr")],
         work / "ctstack-raw.ome.zarr"),
        ("ngff-zarr (DASK_BIN_SHRINK)",
         [sys.executable, "-c", NGFF_ZARR, a.stack, str(work / "ngff.ome.zarr"), str(a.n)],
         work / "ngff.ome.zarr"),
        ("ome-zarr-py (LOCAL_MEAN)",
         [sys.executable, "-c", OME_ZARR, a.stack, str(work / "omezarr.ome.zarr"), str(a.n)],
         work / "omezarr.ome.zarr"),
    ]
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results = {label: [] for label, _, _ in writers}
    for r in range(a.runs):
        for label, cmd, store in writers:
            results[label].append(run(cmd, store))
            print(f"round {r + 1}: {label}: {results[label][-1]}", file=sys.stderr, flush=True)
    end_load = " ".join(open("/proc/loadavg").read().split()[:3])
    lines = []

    def out(line):
        print(line, flush=True)
        lines.append(line)

    out(
        f"{a.n} slices of {a.stack}; {cpu_model()}, {os.cpu_count()} CPUs; {a.runs} interleaved "
        f"round(s), {started}; load average at start {load}, at end {end_load}. Wall s: median "
        "(min-max); x ctstack: the median over rounds of the writer's time over ctstack's default "
        "in the same round."
    )
    out("")
    out("| writer | wall s | x ctstack | peak RSS MB | store MB | level-0 codecs |")
    out("|---|---|---|---|---|---|")
    ours = results[writers[0][0]]
    for label, _, _ in writers:
        runs = results[label]
        failed = [x for x in runs if isinstance(x, str)]
        if failed:
            out(f"| {label} | {failed[0]} | | | | |")
            continue
        walls = [x[0] for x in runs]
        ratios = [x[0] / o[0] for x, o in zip(runs, ours) if not isinstance(o, str)]
        out(
            f"| {label} | {median(walls):.2f} ({min(walls):.2f}-{max(walls):.2f}) | "
            f"{median(ratios):.2f} | {max(x[1] for x in runs):.0f} | {runs[-1][2]:.0f} | "
            f"`{runs[-1][3]}` |"
        )
    if a.out_md:
        write_block(Path(a.out_md), lines)


def write_block(md, lines):
    """Replaces the zarr_peers.py block of `md` with `lines` (added before the
    row-band memory section, or at the end, if the page has none yet)."""
    begin, end = "<!-- zarr_peers.py begin -->", "<!-- zarr_peers.py end -->"
    block = "\n".join([begin, *lines, end])
    text = md.read_text()
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        anchor = "### Memory by bands of rows"
        if anchor in text:
            head, rest = text.split(anchor, 1)
            text = head + block + "\n\n" + anchor + rest
        else:
            text = text.rstrip("\n") + "\n\n" + block + "\n"
    md.write_text(text)


if __name__ == "__main__":
    main()
