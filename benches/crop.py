#!/usr/bin/env python3
"""Crop benchmark (issue 21): a box and a slice range cut out of the standard
stack by `ctstack crop`, by CTHarvester's export loop reproduced as its code
does it (PIL open, crop, save, one thread), by tifffile + numpy (imread,
slice, imwrite; one thread and a pool of 2), and by a C floor that reads
exactly the box's bytes (one pread per row) and writes them
(`floor crop`, benches/floor.c).

Usage (from the repository root, with a Python that has numpy, tifffile,
imagecodecs and Pillow):

    python benches/crop.py [--runs 5] [--cold] [--lzw] [--out-md benches/crop_results.md]

The stack is compare.py's (64 x 2752x2752 u16 phantom, target/compare-data/raw,
and its LZW copy with --lzw), made here if missing. The default task is the
issue's: a 1024 x 1024 box (864..1888 both ways) over slices 8..56 at level 0.
Every contender is a separate process timed end to end through `floor spawn`
(wall time, peak RSS); the medians of --runs runs are printed as a markdown
table (and written to --out-md), each row's output checked sample for sample
against numpy slicing of tifffile's reading of the sources.
"""

import argparse
import shutil
import statistics
import sys
from pathlib import Path

BENCHES = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHES))
import compare  # noqa: E402  (the stack, the floor, the process timer)

ROOT = compare.ROOT
X0, X1, Y0, Y1 = 864, 1888, 864, 1888
Z0, Z1 = 8, 56

PEER = r"""
import os, sys
from concurrent.futures import ThreadPoolExecutor
method, threads, out, x0, x1, y0, y1 = sys.argv[1], int(sys.argv[2]), sys.argv[3], *map(int, sys.argv[4:8])
files = sys.argv[8:]
os.makedirs(out, exist_ok=True)
if method == "pil":
    # CTHarvester's ExportHandler._process_and_save_image, one slice after another.
    from PIL import Image
    for path in files:
        with Image.open(path) as img:
            img.crop((x0, y0, x1, y1)).save(os.path.join(out, os.path.basename(path)))
else:
    import tifffile
    def one(path):
        a = tifffile.imread(path)[y0:y1, x0:x1]
        tifffile.imwrite(os.path.join(out, os.path.basename(path)), a)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, files))
"""


def parse_args(argv):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--cold", action="store_true")
    p.add_argument("--lzw", action="store_true")
    p.add_argument("--workdir", default=str(ROOT / "target" / "compare-data"))
    p.add_argument("--out-md", default=str(BENCHES / "crop_results.md"))
    p.add_argument("--skip-build", action="store_true")
    return p.parse_args(argv)


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    import numpy as np
    import tifffile

    stack_args = argparse.Namespace(slices=64, size=2752, skip_setup=a.skip_build)
    binary, floor = compare.build(stack_args)
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    kinds = ["raw"] + (["lzw"] if a.lzw else [])
    stacks = {k: compare.ensure_stack(stack_args, work, k) for k in kinds}
    out_root = work / "crop-out"
    tmp = work / "crop-tmp"
    tmp.mkdir(exist_ok=True)
    box = f"{X0}:{X1},{Y0}:{Y1}"
    contenders = []

    def add(key, label, cmd, inputs, out, section, group="peer", check="tiff"):
        c = compare.Contender(
            key,
            label,
            [str(x) for x in cmd],
            inputs,
            out=out,
            kind="crop",
            group=group,
            section=section,
        )
        c.check = check
        contenders.append(c)

    for kind, paths in stacks.items():
        sel = paths[Z0:Z1]
        d = paths[0].parent
        tag = "" if kind == "raw" else "LZW: "

        def crop(key, label, extra=(), z=(Z0, Z1), bx=box, kind=kind, d=d, paths=paths):
            out = out_root / key
            add(
                key,
                label,
                [
                    binary,
                    "crop",
                    d,
                    "--box",
                    bx,
                    "--range",
                    f"{z[0]}:{z[1]}",
                    "--out",
                    out,
                    "-q",
                    *extra,
                ],
                paths[z[0] : z[1]],
                out,
                kind,
                "ctstack",
            )

        crop(f"{kind}-ctstack", f"{tag}ctstack crop (default: --mmap auto)")
        if kind == "raw":
            crop("raw-never", "ctstack crop --mmap never", ["--mmap", "never"])
            crop("raw-always", "ctstack crop --mmap always", ["--mmap", "always"])
            offset = tifffile.TiffFile(str(paths[0])).pages[0].dataoffsets[0]
            out = out_root / "raw-floor"
            add(
                "raw-floor",
                "floor: read exactly the box's bytes (one pread per row) and "
                "write them (C -O3, 2 threads)",
                [floor, "crop", 2, out, offset, 2752, 2, X0, X1, Y0, Y1, *sel],
                sel,
                out,
                kind,
                "floor",
                "bin",
            )
            crop("raw-16", "ctstack crop, slices 8..24 only (peak RSS vs depth)", z=(8, 24))
            crop("raw-full", "ctstack crop, the whole slice (peak RSS vs box)", bx="0:2752,0:2752")
        py = sys.executable
        for key, label, method, threads in [
            ("pil", "CTHarvester's loop (PIL open, crop, save; 1 thread)", "pil", 1),
            ("tifffile1", "tifffile + numpy (imread, slice, imwrite; 1 thread)", "tifffile", 1),
            ("tifffile2", "tifffile + numpy (2 threads)", "tifffile", 2),
        ]:
            out = out_root / f"{kind}-{key}"
            add(
                f"{kind}-{key}",
                tag + label,
                [py, "-c", PEER, method, threads, out, X0, X1, Y0, Y1, *sel],
                sel,
                out,
                kind,
            )

    modes = ["warm"] + (["cold"] if a.cold else [])
    info = compare.machine_info()
    for mode in modes:
        compare.time_all(contenders, mode, a.runs, floor, tmp)

    # Checks: every output against numpy slicing of tifffile's reading of the source.
    for c in contenders:
        if c.failed:
            c.verdict = "failed: " + c.failed
            continue
        files = sorted(p for p in Path(c.out).iterdir() if not p.name.startswith("."))
        bad = len(files) != len(c.inputs)
        for src, got in zip(c.inputs, files):
            want = (
                tifffile.imread(str(src))[Y0:Y1, X0:X1]
                if "full" not in c.key
                else tifffile.imread(str(src))
            )
            if c.check == "bin":
                arr = np.frombuffer(got.read_bytes(), dtype="<u2").reshape(want.shape)
            else:
                arr = tifffile.imread(str(got))
            bad |= not np.array_equal(arr, want)
        c.bad = bad
        c.verdict = (
            "DIFFERS from numpy slicing"
            if bad
            else f"= numpy slicing of tifffile ({len(files)} files)"
        )

    def med(c, mode):
        return statistics.median(c.times[mode]) if c.times[mode] else None

    lines = [
        "One run of `python benches/crop.py "
        + " ".join(sys.argv[1:])
        + "` ("
        + "; ".join(f"{k}: {v}" for k, v in info)
        + "). Task: columns and rows "
        f"{X0}..{X1} (1024 x 1024) of slices {Z0}..{Z1} (48) of 64 x 2752x2752 uint16, "
        f"level 0. Medians of {a.runs} runs, whole processes.",
        "",
    ]
    for mode in modes:
        for kind in kinds:
            # Cold: ctstack and the floor only, as in compare.py.
            rows = [
                c
                for c in contenders
                if c.section == kind and not (mode == "cold" and c.group == "peer")
            ]
            base = next((c for c in rows if c.key == f"{kind}-ctstack"), None)
            floor_row = next((c for c in rows if c.key == "raw-floor"), None)
            lines += [
                f"{mode}, {kind}:",
                "",
                "| what | median s | min s | peak RSS MB | x floor | x ctstack | output |",
                "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
            ]
            for c in rows:
                m = med(c, mode)
                if m is None:
                    lines.append(f"| {c.label} | | | | | | {c.verdict} |")
                    continue
                f = med(floor_row, mode) if floor_row else None
                b = med(base, mode) if base else None
                lines.append(
                    f"| {c.label} | {m:.3f} | {min(c.times[mode]):.3f} | "
                    f"{statistics.median(c.rss[mode]):.0f} | "
                    f"{compare.fmt_ratio(m / f) if f else ''} | "
                    f"{compare.fmt_ratio(m / b) if b else ''} | {c.verdict} |"
                )
            lines.append("")
    text = "\n".join(lines)
    print(text)
    Path(a.out_md).write_text(text + "\n")
    shutil.rmtree(out_root, ignore_errors=True)
    return 1 if any(c.bad or c.failed for c in contenders) else 0


if __name__ == "__main__":
    sys.exit(main())
