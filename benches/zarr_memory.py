#!/usr/bin/env python3
"""Peak memory and time of `ctstack zarr` and `ctstack pyramid` on wide slices, against floors.

usage: python3 benches/zarr_memory.py [--binary target/release/ctstack] [--work /tmp/ctstack-zarr-memory]
                                      [--stacks 2752x64,16384x16] [--baseline OTHER_BINARY] [--keep]
                                      [--compress deflate|zstd|lzw] [--runs 3]
       (a Python with numpy; tifffile and imagecodecs for --compress; a C compiler for benches/floor.c)

For each stack WIDTHxCOUNT it writes COUNT uncompressed uint16 TIFF slices of WIDTH x WIDTH (a smooth
phantom with a little noise, one strip each) under WORK, warms the page cache with one read, then times, one after
the other in one run, each started through `floor spawn` (benches/floor.c: wall time from fork to wait4
and the child's peak RSS):

- `ctstack zarr STACK --out STORE -q` (default options: chunks 16x256x256, blosc-lz4-bitshuffle);
- `ctstack zarr ... --compression none`, only for stacks up to 4 GB (its store is as large as the input),
  against the two store floors of benches/floor.c, taking turns --runs times (medians; ctstack's
  ratio is the median of its ratios to the faster floor of the same round): `floor store` and
  `floor store-batch 2 OUT LIST STACK/*` read every input byte and write the store's chunk files
  (LIST: the names, folders and sizes of the store ctstack just wrote), each under a temporary
  name, synced and renamed, every folder synced: the least a writer does whose every file is
  atomic and durable (one syncs each file as it is written, the other starts each file's
  writeback and syncs them all at the end, as ctstack does per level);
- `ctstack pyramid STACK --out OUT -q` against `floor read 2 STACK/*` (reads every input byte).

With --baseline, `ctstack zarr` (both) is also timed with another build (an older ctstack), for stacks up
to 4 GB (an older writer held 16 whole slices per level: 11 GB at 16384 wide).

With --compress CODEC the slices are rewritten by tifffile compressed, each page in ONE strip
(rowsperstrip = the height, the horizontal predictor), as tifffile, ImageJ and Pillow write them:
`ctstack zarr` (and --baseline) and `ctstack pyramid` are timed on those (no uncompressed store, no floors).

Each output is removed before the next run (disk is limited), and the stacks at the end unless --keep.
The machine's load average is printed with the table: ratios within one run are what to compare.
"""

import argparse
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def build_floor():
    src = ROOT / "benches" / "floor.c"
    floor = ROOT / "target" / "compare-bin" / "floor"
    if not floor.exists() or floor.stat().st_mtime < src.stat().st_mtime:
        floor.parent.mkdir(parents=True, exist_ok=True)
        cmd = ["cc", "-O3", "-march=native", "-pthread", "-o", str(floor), str(src)]
        if subprocess.run(cmd).returncode != 0:
            sys.exit("zarr_memory: compiling benches/floor.c failed")
    return floor


def write_tiff(path, rows_iter, width, height):
    """An uncompressed little-endian uint16 TIFF of one strip, rows from rows_iter (blocks)."""
    data_bytes = width * height * 2
    header = struct.pack("<2sHI", b"II", 42, 8 + data_bytes)
    entries = [
        (256, 4, 1, width),  # ImageWidth
        (257, 4, 1, height),  # ImageLength
        (258, 3, 1, 16),  # BitsPerSample
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 1),  # MinIsBlack
        (273, 4, 1, 8),  # StripOffsets
        (277, 3, 1, 1),  # SamplesPerPixel
        (278, 4, 1, height),  # RowsPerStrip
        (279, 4, 1, data_bytes),  # StripByteCounts
        (339, 3, 1, 1),  # SampleFormat: unsigned
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        packed = struct.pack("<H", value) + b"\0\0" if typ == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, typ, count) + packed
    ifd += struct.pack("<I", 0)
    with open(path, "wb") as f:
        f.write(header)
        for block in rows_iter:
            f.write(block.astype("<u2").tobytes())
        f.write(ifd)


def make_stack(directory, width, count):
    directory.mkdir(parents=True, exist_ok=True)
    files = [directory / f"slice_{z:04d}.tif" for z in range(count)]
    if all(f.exists() and f.stat().st_size > width * width * 2 for f in files):
        return files
    rng = np.random.default_rng(29)
    x = np.arange(width, dtype=np.float32)
    block = 512
    for z, path in enumerate(files):
        def rows():
            for y0 in range(0, width, block):
                y = np.arange(y0, min(y0 + block, width), dtype=np.float32)[:, None]
                r2 = ((x[None, :] - width / 2) ** 2 + (y - width / 2) ** 2) / (width / 2) ** 2
                phantom = np.where(r2 < 0.8, 20000 + 8000 * np.cos(6 * r2 + z * 0.05), 1000)
                noise = rng.integers(0, 8, size=phantom.shape)
                yield (phantom + noise).astype(np.uint16)
        write_tiff(path, rows(), width, width)
    return files


def compress_stack(files, directory, codec):
    """The slices rewritten by tifffile with `codec`, each page in one strip (horizontal predictor)."""
    import tifffile

    directory.mkdir(parents=True, exist_ok=True)
    out = [directory / f.name for f in files]
    for src, dst in zip(files, out):
        if dst.exists():
            continue
        pixels = tifffile.imread(src)
        tmp = dst.with_name(".tmp-" + dst.name)
        tifffile.imwrite(tmp, pixels, compression=codec, predictor=True,
                         rowsperstrip=pixels.shape[0])
        os.replace(tmp, dst)
    return out


def spawn(floor, cmd, tmp):
    """(seconds, peak RSS MB) of cmd, started through `floor spawn`."""
    result = tmp / "spawn.txt"
    code = subprocess.run([str(floor), "spawn", str(result), *map(str, cmd)],
                          stdout=subprocess.DEVNULL).returncode
    if code != 0:
        sys.exit(f"zarr_memory: {' '.join(map(str, cmd))} exited with {code}")
    seconds, kib = result.read_text().split()
    return float(seconds), int(kib) / 1024


def remove(path):
    if Path(path).is_dir():
        shutil.rmtree(path)


def uncompressed_rounds(floor, builds, stack, files, name, work, runs):
    """`ctstack zarr --compression none` (each build) and the two store floors, taking turns `runs`
    times; rows of medians, each ctstack ratio the median of its same-round ratios to the faster
    floor of that round."""
    times = {}
    ratios = {}
    for r in range(runs):
        round_times = {}
        for tag, binary in builds:
            store = work / f"none-{r}{tag.strip(' ()')}.ome.zarr"
            t, rss = spawn(floor, [binary, "zarr", stack, "--out", store, "-q",
                                   "--voxel-size", "1,1,1", "--compression", "none"], work)
            chunks = sorted(p for p in store.rglob("*") if p.is_file() and "/c/" in str(p))
            count, written = len(chunks), sum(p.stat().st_size for p in chunks)
            # The floors write the same files: names, folders and sizes.
            listing = work / "chunks.txt"
            listing.write_text("".join(f"{p.stat().st_size} {p.relative_to(store)}\n" for p in chunks))
            remove(store)
            round_times[f"ctstack zarr --compression none{tag}"] = (t, rss)
        for mode in ("store", "store-batch"):
            out = work / f"{mode}-{r}"
            t, rss = spawn(floor, [floor, mode, "2", out, listing, *files], work)
            remove(out)
            round_times[f"floor {mode} ({count} files, {written / 1e9:.2f} GB)"] = (t, rss)
        fastest = min(t for what, (t, _) in round_times.items() if what.startswith("floor"))
        for what, (t, rss) in round_times.items():
            times.setdefault(what, []).append((t, rss))
            ratios.setdefault(what, []).append(t / fastest)
    rows = []
    for what, runs_of in times.items():
        med = lambda xs: sorted(xs)[len(xs) // 2]
        ratio = med(ratios[what]) if what.startswith("ctstack") else None
        rows.append((name, what, med([t for t, _ in runs_of]), max(r for _, r in runs_of), ratio))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "ctstack"))
    ap.add_argument("--work", default="/tmp/ctstack-zarr-memory")
    ap.add_argument("--stacks", default="2752x64,16384x16")
    ap.add_argument("--baseline")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--compress", choices=["deflate", "zstd", "lzw"])
    ap.add_argument("--runs", type=int, default=3,
                    help="rounds of the uncompressed store against its floors (medians)")
    a = ap.parse_args()
    floor = build_floor()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    loads = [os.getloadavg()[0]]
    for spec in a.stacks.split(","):
        width, count = map(int, spec.split("x"))
        stack = work / f"s{width}x{count}"
        files = make_stack(stack, width, count)
        input_bytes = sum(f.stat().st_size for f in files)
        name = f"{count} x {width}x{width} u16 ({input_bytes / 1e9:.2f} GB)"
        if a.compress:
            raw = stack
            stack = work / f"s{width}x{count}-{a.compress}"
            files = compress_stack(files, stack, a.compress)
            packed = sum(f.stat().st_size for f in files)
            name = f"{count} x {width}x{width} u16, {a.compress} in one strip ({packed / 1e9:.2f} GB)"
            if not a.keep:
                remove(raw)
        subprocess.run([str(floor), "read", "2", *map(str, files)], stdout=subprocess.DEVNULL)
        store, out = work / "out.ome.zarr", work / "out"
        remove(store)
        small = input_bytes <= 4 << 30
        uncompressed_runs = small and not a.compress
        builds = [("", a.binary)] + ([(" (baseline)", a.baseline)] if a.baseline and small else [])
        for tag, binary in builds:
            t, rss = spawn(floor, [binary, "zarr", stack, "--out", store, "-q", "--voxel-size", "1,1,1"], work)
            rows.append((name, f"ctstack zarr (its default codec){tag}", t, rss, None))
            remove(store)
        if uncompressed_runs:
            rows += uncompressed_rounds(floor, builds, stack, files, name, work, a.runs)
        t, rss = spawn(floor, [a.binary, "pyramid", stack, "--out", out, "-q"], work)
        remove(out)
        if a.compress:
            rows.append((name, "ctstack pyramid", t, rss, None))
        else:
            ft, frss = spawn(floor, [floor, "read", "2", *files], work)
            rows.append((name, "ctstack pyramid", t, rss, t / ft))
            rows.append((name, "floor read", ft, frss, 1.0))
        loads.append(os.getloadavg()[0])
        if not a.keep:
            remove(stack)
    print(f"# {time.strftime('%Y-%m-%d %H:%M')}, load average {min(loads):.1f}-{max(loads):.1f}, "
          f"{os.cpu_count()} cores, {a.binary}")
    print("| stack | what | wall s | peak RSS MB | x its floor |")
    print("|---|---|---|---|---|")
    for name, what, t, rss, ratio in rows:
        r = "" if ratio is None else f"{ratio:.2f}"
        print(f"| {name} | {what} | {t:.2f} | {rss:.0f} | {r} |")


if __name__ == "__main__":
    main()
