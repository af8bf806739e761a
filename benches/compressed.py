#!/usr/bin/env python3
"""Decoding compressed TIFF stacks: ctstack against tifffile + imagecodecs.

usage: python benches/compressed.py [--slices 16] [--size 2752] [--runs 5]
                                    [--codecs deflate-pred,lzw,zstd-pred,packbits]
                                    [--workdir DIR] [--out-md FILE]

Run it with a Python that has numpy, tifffile and imagecodecs (/work/venv, or
compare.py's venv) after `cargo build --release`; the ctstack Python package is
taken from python/ and its library from target/release (CTSTACK_LIBRARY
overrides).

It writes a deterministic CT phantom (ellipsoids of different densities plus
seeded Gaussian noise, uint16, little-endian) with tifffile.imwrite once per
codec into WORKDIR/<codec> (tifffile's default strips), reused while the JSON
marker matches the parameters:

- deflate-pred: Deflate (compression='zlib', TIFF code 8) with the horizontal
  predictor, what tifffile and Fiji users write to save space;
- lzw: LZW without a predictor (compare.py's LZW stack);
- zstd-pred: ZSTD (code 50000) with the horizontal predictor;
- packbits: PackBits (code 32773).

The task is to decode every slice of the stack into memory, in one process,
page cache warm. Contenders, taking turns within each round after a warm-up
round (medians of --runs rounds):

- ctstack: `ctstack.Slice(path).array()` per slice, one slice after another
  (the slice's strips are decoded in parallel on ctstack's 2 threads);
- tifffile, 2 threads per slice: `tifffile.imread(path, maxworkers=2)` per slice;
- tifffile, 2 slices at once: a 2-thread pool over the slices, one thread each.

Each run is timed in wall-clock seconds and in CPU seconds (the process's, all
threads: what the decode costs, whatever the machine's load). The ratios are the
faster tifffile contender's over ctstack's. Every slice ctstack
decodes is compared with tifffile's once before timing. Prints a markdown table
with the machine (CPU model, cores, load average at start and end) and writes it
into the compressed.py block of --out-md (benches/results.md).
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATOR_VERSION = 1
SEED = 20261207

CODECS = {
    "deflate-pred": ("Deflate + predictor", {"compression": "zlib", "predictor": True}),
    "lzw": ("LZW", {"compression": "lzw"}),
    "zstd-pred": ("ZSTD + predictor", {"compression": "zstd", "predictor": True}),
    "packbits": ("PackBits", {"compression": "packbits"}),
}

# (centre x, y, z as fractions; semi-axes as fractions; density): a specimen
# with inclusions and a cavity, as in compare.py's phantom.
SHAPES = [
    ((0.50, 0.50, 0.50), (0.45, 0.41, 0.60), 21000.0),
    ((0.36, 0.44, 0.47), (0.11, 0.10, 0.28), 37000.0),
    ((0.63, 0.57, 0.52), (0.09, 0.13, 0.26), 50000.0),
    ((0.44, 0.67, 0.50), (0.08, 0.06, 0.30), 5000.0),
]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def phantom_slice(np, k, n, size, noise):
    """Slice k of n: the shapes at this depth plus seeded Gaussian noise."""
    z = (k + 0.5) / n
    img = np.full((size, size), 2400.0, dtype=np.float32)
    c = (np.arange(size, dtype=np.float32) + 0.5) / size
    ys, xs = c[:, None], c[None, :]
    for (cx, cy, cz), (ax, ay, az), value in SHAPES:
        r2 = 1.0 - ((z - cz) / az) ** 2
        if r2 > 0:
            img[((xs - cx) / ax) ** 2 + ((ys - cy) / ay) ** 2 <= r2] = value
    rng = np.random.default_rng([SEED, k])
    img += rng.standard_normal((size, size), dtype=np.float32) * noise
    return np.rint(np.clip(img, 0, 65535)).astype("<u2")


def ensure_stack(a, codec):
    import numpy as np
    import tifffile
    folder = Path(a.workdir) / codec
    marker = folder / "stack.json"
    want = {"generator": GENERATOR_VERSION, "slices": a.slices, "size": a.size,
            "noise": a.noise, "codec": codec, "tifffile": tifffile.__version__}
    paths = [folder / f"slice_{k:04d}.tif" for k in range(a.slices)]
    if marker.exists() and json.loads(marker.read_text()) == want and all(
            p.exists() for p in paths):
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    log(f"writing {a.slices} slices of {a.size}x{a.size} ({codec}) into {folder}")
    for k, p in enumerate(paths):
        tifffile.imwrite(p, phantom_slice(np, k, a.slices, a.size, a.noise),
                         photometric="minisblack", metadata=None, **CODECS[codec][1])
    marker.write_text(json.dumps(want))
    return paths


def run_ctstack(ctstack, paths):
    for p in paths:
        s = ctstack.Slice(str(p))
        s.array()
        s.close()


def run_tifffile_strips(tifffile, paths):
    for p in paths:
        tifffile.imread(p, maxworkers=2)


def run_tifffile_slices(tifffile, paths, pool):
    list(pool.map(lambda p: tifffile.imread(p, maxworkers=1), paths))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--slices", type=int, default=16)
    p.add_argument("--size", type=int, default=2752)
    p.add_argument("--noise", type=float, default=350.0, help="noise sigma (gray values)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--codecs", default=",".join(CODECS))
    p.add_argument("--workdir", default=str(ROOT / "target" / "compressed-data"))
    p.add_argument("--out-md", default=str(ROOT / "benches" / "results.md"))
    a = p.parse_args(argv)
    codecs = a.codecs.split(",")
    for c in codecs:
        if c not in CODECS:
            p.error(f"unknown codec {c!r}: one of {', '.join(CODECS)}")

    os.environ.setdefault("CTSTACK_LIBRARY", str(ROOT / "target" / "release" / "libctstack.so"))
    sys.path.insert(0, str(ROOT / "python"))
    import numpy as np
    import tifffile
    import imagecodecs
    import ctstack
    import machine

    load_start = machine.load()
    stacks = {c: ensure_stack(a, c) for c in codecs}
    for c, paths in stacks.items():
        for path in paths:
            s = ctstack.Slice(str(path))
            same = np.array_equal(s.array(), tifffile.imread(path))
            s.close()
            if not same:
                sys.exit(f"compressed: ctstack and tifffile differ on {path}")

    pool = ThreadPoolExecutor(2)
    contenders = {
        "ctstack": lambda paths: run_ctstack(ctstack, paths),
        "tifffile-strips": lambda paths: run_tifffile_strips(tifffile, paths),
        "tifffile-slices": lambda paths: run_tifffile_slices(tifffile, paths, pool),
    }
    times = {(c, k): [] for c in codecs for k in contenders}
    cpu = {(c, k): [] for c in codecs for k in contenders}
    for r in range(a.runs + 1):
        for c in codecs:
            for k, f in contenders.items():
                c0, t0 = time.process_time(), time.perf_counter()
                f(stacks[c])
                dt, dc = time.perf_counter() - t0, time.process_time() - c0
                if r > 0:
                    times[(c, k)].append(dt)
                    cpu[(c, k)].append(dc)
        log(f"round {r}/{a.runs} done")
    load_end = machine.load()

    med = {key: statistics.median(v) for key, v in times.items()}
    mcpu = {key: statistics.median(v) for key, v in cpu.items()}
    lines = [
        f"One run of `python benches/compressed.py --slices {a.slices} --size {a.size} "
        f"--runs {a.runs} --codecs {a.codecs}` ({machine.cpu()}, {platform.system()} "
        f"{platform.release()}; load average at start {load_start}, at end {load_end}; "
        f"tifffile {tifffile.__version__}, "
        f"imagecodecs {imagecodecs.__version__}, numpy {np.__version__}; "
        f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}). Task: decode every slice "
        f"of {a.slices} x {a.size}x{a.size} uint16 into memory, page cache warm; medians of "
        f"{a.runs} interleaved rounds, wall-clock seconds (CPU seconds of the process, all threads).",
        "",
        "| input | MB on disk | ctstack | tifffile, 2 threads per slice | tifffile, 2 slices at once "
        "| tifffile / ctstack, wall | tifffile / ctstack, CPU |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in codecs:
        mb = sum(p.stat().st_size for p in stacks[c]) / 1e6
        best = min(med[(c, "tifffile-strips")], med[(c, "tifffile-slices")])
        best_cpu = min(mcpu[(c, "tifffile-strips")], mcpu[(c, "tifffile-slices")])
        cell = lambda k: f"{med[(c, k)]:.3f} ({mcpu[(c, k)]:.3f})"
        lines.append(
            f"| {CODECS[c][0]} | {mb:.0f} | {cell('ctstack')} | {cell('tifffile-strips')} | "
            f"{cell('tifffile-slices')} | {best / med[(c, 'ctstack')]:.2f}x | "
            f"{best_cpu / mcpu[(c, 'ctstack')]:.2f}x |")
    table = "\n".join(lines)
    print(table)
    write_block(Path(a.out_md), table)


def write_block(path, table):
    """Replaces the compressed.py block of `path` (appended if absent)."""
    begin, end = "<!-- compressed.py begin -->", "<!-- compressed.py end -->"
    text = path.read_text() if path.exists() else ""
    block = f"{begin}\n{table}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## Compressed inputs (benches/compressed.py)\n\n" + block + "\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
