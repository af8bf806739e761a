#!/usr/bin/env python3
"""One run each: a TIFF stack to an OME-Zarr pyramid by ctstack, ngff-zarr and
ome-zarr-py, same chunks (16, 256, 256), same levels (3 halvings), on the
stack's first N slices; wall time and peak RSS of the whole process (from
/usr/bin/time), and each store's size on disk and level-0 codecs.

usage: zarr_peers.py CTSTACK_BINARY STACK_DIR WORK_DIR [-n 64] [--out-md FILE]
       (run with a Python that has numpy, tifffile, dask, zarr>=3, ngff-zarr, ome-zarr)

The peers read the slices with tifffile into a dask array chunked as the store
(one task per chunk-deep band of slices), as their documentation does for a
TIFF series; ngff-zarr downsamples with DASK_BIN_SHRINK (its mean), ome-zarr-py
with Methods.LOCAL_MEAN (a 2x2x2 mean for 3-D zyx data, scale_factors 2, 4, 8).
Each writes its library's default compression (printed); ctstack is run with
zstd level 3 (its default) and with none. With --out-md the table also goes
into FILE between its zarr_peers.py markers (benches/results.md), as
compare.py's and crop.py's do.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

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


LINES = []


def out(line):
    print(line, flush=True)
    LINES.append(line)


def run(label, cmd, store):
    shutil.rmtree(store, ignore_errors=True)
    os.sync()
    timing = Path(str(store) + ".time")
    started = time.time()
    r = subprocess.run(
        ["/usr/bin/time", "-f", "%e %M", "-o", str(timing), *cmd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if r.returncode != 0:
        out(f"| {label} | failed: {r.stderr.strip().splitlines()[-1:]} | | | |")
        return
    wall, rss_kib = timing.read_text().split()[-2:]
    out(
        f"| {label} | {float(wall):.2f} | {int(rss_kib) / 1024:.0f} | {du(store) / 1e6:.0f} | "
        f"`{codecs(store)}` |"
    )
    del started


def main():
    p = argparse.ArgumentParser()
    p.add_argument("ctstack")
    p.add_argument("stack")
    p.add_argument("work")
    p.add_argument("-n", type=int, default=64)
    p.add_argument("--out-md", help="also write the table into this page's zarr_peers.py block")
    a = p.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    load = open("/proc/loadavg").read().split()[:3]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "?")
    out(f"One run of `python benches/zarr_peers.py CTSTACK STACK WORK -n {a.n}` "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; CPU {cpu}, {os.cpu_count()} "
        f"cores): {a.n} slices of {Path(a.stack).name}, load average at start {' '.join(load)}.")
    out("")
    out("| writer | wall s | peak RSS MB | store MB | level-0 codecs |")
    out("|---|---|---|---|---|")
    base = [a.ctstack, "zarr", a.stack, "--range", f"0:{a.n - 1}", "--chunks", "16,256,256", "-q"]
    run(
        "ctstack zarr (zstd:3)",
        base + ["--out", str(work / "ctstack.ome.zarr")],
        work / "ctstack.ome.zarr",
    )
    run(
        "ctstack zarr --compression none",
        base + ["--compression", "none", "--out", str(work / "ctstack-raw.ome.zarr")],
        work / "ctstack-raw.ome.zarr",
    )
    run(
        "ngff-zarr (DASK_BIN_SHRINK)",
        [sys.executable, "-c", NGFF_ZARR, a.stack, str(work / "ngff.ome.zarr"), str(a.n)],
        work / "ngff.ome.zarr",
    )
    run(
        "ome-zarr-py (LOCAL_MEAN)",
        [sys.executable, "-c", OME_ZARR, a.stack, str(work / "omezarr.ome.zarr"), str(a.n)],
        work / "omezarr.ome.zarr",
    )
    if a.out_md:
        write_block(Path(a.out_md), LINES)


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
