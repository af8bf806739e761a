#!/usr/bin/env python3
"""`ctstack zarr` with each chunk codec: wall time, CPU time and store size, on
the CT phantom and on a noisier CT-like stack, interleaved.

usage: python benches/zarr_codecs.py [--slices 32] [--size 2752] [--runs 3]
                                     [--codecs none,zstd:3,...] [--workdir DIR]
                                     [--out-md FILE] [--ctstack BINARY]

Run it with a Python that has numpy and tifffile, after `cargo build --release`
(the command is target/release/ctstack unless --ctstack). The stacks are
written once into WORKDIR (reused while their marker matches) by
benches/compressed.py's phantom generator, uncompressed: `phantom` with noise
sigma 350 gray values (compare.py's phantom and ../shared/tools/make_stack.py
use the same), `noisy` with sigma 1500 (a shorter exposure: the noise of a fast
scan, which no codec removes). Every run deletes the previous store first (not
timed: a rerun on an unchanged store writes nothing), then times
`ctstack zarr STACK --out STORE --compression CODEC -q` as a whole process; CPU
is the child's user + system time. Medians of --runs interleaved rounds after a
warm-up round. The table goes to stdout and into the zarr_codecs.py block of
--out-md (benches/results.md).
"""
import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))
import compressed  # noqa: E402  (the phantom generator)
import machine  # noqa: E402  (the CPU model)

CODECS = ["none", "zstd:3", "zstd:1", "blosc-lz4", "blosc-lz4-bitshuffle", "blosc-zstd:1",
          "blosc-zstd-bitshuffle:1", "blosc-zstd-bitshuffle:5"]
STACKS = {"phantom": 350.0, "noisy": 1500.0}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def store_bytes(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--slices", type=int, default=32)
    p.add_argument("--size", type=int, default=2752)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--codecs", default=",".join(CODECS))
    p.add_argument("--workdir", default=str(ROOT / "target" / "zarr-codecs"))
    p.add_argument("--out-md", default=str(ROOT / "benches" / "results.md"))
    p.add_argument("--ctstack", default=str(ROOT / "target" / "release" / "ctstack"))
    a = p.parse_args(argv)
    codecs = a.codecs.split(",")
    work = Path(a.workdir)

    stacks = {}
    for name, noise in STACKS.items():
        args = argparse.Namespace(workdir=str(work), slices=a.slices, size=a.size, noise=noise)
        # compressed.ensure_stack writes WORKDIR/<codec>: a `none` codec for raw slices.
        compressed.CODECS.setdefault("none-" + name, ("uncompressed", {}))
        stacks[name] = compressed.ensure_stack(args, "none-" + name)[0].parent
    raw_bytes = {n: sum(f.stat().st_size for f in s.glob("*.tif")) for n, s in stacks.items()}

    load_start = os.getloadavg()
    wall, cpu, size = {}, {}, {}
    for r in range(a.runs + 1):
        for name, stack in stacks.items():
            for codec in codecs:
                store = work / "store.ome.zarr"
                shutil.rmtree(store, ignore_errors=True)
                os.sync()
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                subprocess.run([a.ctstack, "zarr", str(stack), "--out", str(store),
                                "--compression", codec, "-q"], check=True)
                dt = time.perf_counter() - t0
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                dc = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                if r > 0:
                    wall.setdefault((name, codec), []).append(dt)
                    cpu.setdefault((name, codec), []).append(dc)
                size[(name, codec)] = store_bytes(store)
        log(f"round {r}/{a.runs} done")
    shutil.rmtree(work / "store.ome.zarr", ignore_errors=True)
    load_end = os.getloadavg()

    cpu_model = machine.cpu_model()
    lines = [
        f"One run of `python benches/zarr_codecs.py --slices {a.slices} --size {a.size} "
        f"--runs {a.runs}` ({cpu_model}, {os.cpu_count()} cores, {platform.system()} "
        f"{platform.release()}; load average at start {' '.join('%.2f' % x for x in load_start)}, "
        f"at end {' '.join('%.2f' % x for x in load_end)}; "
        f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}). `ctstack zarr` of "
        f"{a.slices} x {a.size}x{a.size} uint16 (default chunks 16x256x256, every level), "
        f"medians of {a.runs} interleaved rounds: wall-clock seconds (CPU seconds), and the "
        f"store's size against the input's.",
        "",
        "| codec | phantom: s | phantom: size | noisy: s | noisy: size |",
        "|---|---|---|---|---|",
    ]
    for codec in codecs:
        cells = []
        for name in stacks:
            key = (name, codec)
            cells.append(f"{statistics.median(wall[key]):.2f} ({statistics.median(cpu[key]):.2f})")
            cells.append(f"{size[key] / raw_bytes[name] * 100:.1f}%")
        lines.append(f"| {codec} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print(table)
    begin, end = "<!-- zarr_codecs.py begin -->", "<!-- zarr_codecs.py end -->"
    md = Path(a.out_md)
    text = md.read_text() if md.exists() else ""
    block = f"{begin}\n{table}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n### Chunk codecs (benches/zarr_codecs.py)\n\n" + block + "\n"
    md.write_text(text)


if __name__ == "__main__":
    main()
