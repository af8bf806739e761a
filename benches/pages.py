#!/usr/bin/env python3
"""Multi-page TIFF stacks (issue 29): time per page of `ctstack crop` and
`ctstack pyramid` on stacks saved as one file of 500, 2000 and 10,000 pages of
128x128 uint16, one IFD per page (tifffile). A job that walks the IFD chain
again to reach page k for each page is quadratic in the page count; with the
plan's page index the time per page should not grow with it.

Usage (from the repository root, with a Python that has numpy and tifffile):

    python3 benches/pages.py [--pages 500,2000,10000] [--runs 3] [--skip-build]
                             [--binary BIN] [--baseline BIN] [--baseline-pages 500,2000]
                             [--out-md benches/results.md]

It builds `target/release/ctstack` (`cargo build --release --bin ctstack`,
unless --skip-build or --binary names the binary to time), makes each stack in --workdir (default
target/pages-data; removed after its runs unless --keep), and times, each as
a whole process (wall clock, median of --runs runs after one warm-up, input in
the page cache, output folder removed before each run, not timed):

- `ctstack crop stack.tif --box 10:50,10:50 --out DIR -q` (the issue's crop:
  one 40x40 file per page, each written atomically and synced);
- the same with `--mmap always` (pages viewed in a map);
- `ctstack pyramid stack.tif --min-size 16 --out DIR -q` (three levels, so
  every page is read: with the default --min-size 500 a 128x128 stack has no
  level to build).

--baseline BIN adds the same rows for another ctstack binary (e.g. one built
from an older commit), to show what changed, on the stacks of --baseline-pages
only (default: all; a quadratic crop of 10,000 pages takes minutes a run). Each crop's output is checked
against numpy slicing of tifffile's reading of the stack (first, middle and
last page, and the file count). The table (per page: the median divided by
the page count; growth: the largest stack's per-page time / the smallest's) goes to stdout
and into --out-md between the markers `<!-- begin: benches/pages.py -->` and
`<!-- end: benches/pages.py -->`, replacing what was there and leaving the
rest of the file as it is.
"""

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCHES = Path(__file__).resolve().parent
ROOT = BENCHES.parent
BEGIN = "<!-- begin: benches/pages.py -->"
END = "<!-- end: benches/pages.py -->"
SIZE = 128
BOX = (10, 50, 10, 50)  # x0, x1, y0, y1


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--pages", default="500,2000,10000")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--skip-build", action="store_true")
    p.add_argument("--binary", help="the ctstack binary to time [default: target/release/ctstack]")
    p.add_argument("--baseline", help="another ctstack binary, timed on the same stacks")
    p.add_argument("--baseline-pages", help="the page counts the baseline is timed on")
    p.add_argument("--workdir", default=str(ROOT / "target" / "pages-data"))
    p.add_argument("--keep", action="store_true", help="keep the stacks made")
    p.add_argument("--out-md", default=str(BENCHES / "results.md"))
    return p.parse_args(argv)


def sh(cmd):
    try:
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def build(skip):
    binary = ROOT / "target" / "release" / "ctstack"
    if not skip:
        log("cargo build --release --bin ctstack")
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "ctstack"],
                       cwd=ROOT, check=True)
    if not binary.exists():
        sys.exit(f"pages: no {binary}; run without --skip-build")
    return binary


def make_stack(path, pages, np, tifffile):
    """`pages` pages of SIZE x SIZE uint16, one IFD each; page p's samples are
    (p * 7919) ^ (y * SIZE + x), kept to 16 bits."""
    yx = np.arange(SIZE * SIZE, dtype=np.uint32).reshape(SIZE, SIZE)

    def page(p):
        return ((p * 7919) ^ yx).astype(np.uint16)

    with tifffile.TiffWriter(str(path)) as tif:
        for p in range(pages):
            tif.write(page(p), photometric="minisblack", metadata=None, contiguous=False)
    return page


def run(cmd):
    """Wall seconds and CPU seconds (user + system, all threads) of one process."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    elapsed = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"pages: {' '.join(map(str, cmd))} failed:\n{err}")
    return elapsed, usage.ru_utime + usage.ru_stime


def check_crop(out, pages, page, np, tifffile):
    files = sorted(out.iterdir())
    if len(files) != pages:
        sys.exit(f"pages: {out}: {len(files)} files, expected {pages}")
    x0, x1, y0, y1 = BOX
    for p in (0, pages // 2, pages - 1):
        got = tifffile.imread(str(files[p]))
        want = page(p)[y0:y1, x0:x1]
        if not np.array_equal(got, want):
            sys.exit(f"pages: {files[p]} differs from page {p}'s box")


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    import numpy as np
    import tifffile

    binary = Path(a.binary).resolve() if a.binary else build(a.skip_build)
    binaries = [("ctstack", binary)]
    if a.baseline:
        binaries.append(("baseline", Path(a.baseline).resolve()))
    counts = [int(n) for n in a.pages.split(",")]
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    info = {
        "CPU": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                     if l.startswith("model name")), "?") + f", {os.cpu_count()} cores",
        "kernel": platform.release(),
        "load average at start": f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        "Rust": sh(["rustc", "--version"]),
        "ctstack commit": sh(["git", "rev-parse", "--short", "HEAD"]),
        "Python": f"{platform.python_version()}; numpy {np.__version__}, tifffile {tifffile.__version__}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    if a.baseline:
        info["baseline"] = str(a.baseline)
    x0, x1, y0, y1 = BOX
    jobs = [
        ("crop", "crop --box 10:50,10:50", ["crop", "--box", f"{x0}:{x1},{y0}:{y1}"]),
        ("crop", "crop --box 10:50,10:50 --mmap always",
         ["crop", "--box", f"{x0}:{x1},{y0}:{y1}", "--mmap", "always"]),
        ("pyramid", "pyramid --min-size 16", ["pyramid", "--min-size", "16"]),
    ]
    # (binary name, job label) -> {pages: (median wall s, median CPU s)}
    medians = {}
    for n in counts:
        stack = work / f"stack{n}.tif"
        log(f"making {stack} ({n} pages of {SIZE}x{SIZE} uint16)")
        page = make_stack(stack, n, np, tifffile)
        for name, b in binaries:
            if name == "baseline" and a.baseline_pages and str(n) not in a.baseline_pages.split(","):
                continue
            for kind, label, args in jobs:
                out = work / "out"
                cmd = [str(b), args[0], str(stack), *args[1:], "--out", str(out), "-q"]
                times, cpus = [], []
                for i in range(a.runs + 1):
                    shutil.rmtree(out, ignore_errors=True)
                    os.sync()
                    t, cpu = run(cmd)
                    if i == 0 and kind == "crop":
                        check_crop(out, n, page, np, tifffile)
                    if i > 0:
                        times.append(t)
                        cpus.append(cpu)
                m, c = statistics.median(times), statistics.median(cpus)
                medians.setdefault((name, label), {})[n] = (m, c)
                log(f"{name} {label}, {n} pages: median {m:.3f} s, CPU {c:.3f} s "
                    f"({1e3 * m / n:.3f} ms/page; runs {', '.join(f'{t:.3f}' for t in times)})")
                shutil.rmtree(out, ignore_errors=True)
        if not a.keep:
            stack.unlink()

    cmd = "python3 benches/pages.py " + " ".join(
        (sys.argv[1:] if argv is None else argv))
    lines = [BEGIN, "", "## Multi-page TIFF stacks: time per page (issue 29)", ""]
    lines += [f"- **{k}**: {v}" for k, v in info.items()]
    lines += [
        f"- **regenerate**: `{cmd.strip()}`",
        f"- **data**: one file per stack, N pages of {SIZE}x{SIZE} uint16, one IFD each "
        "(tifffile), made by the script",
        f"- **method**: each job a whole process, wall clock, median of {a.runs} runs after one "
        "warm-up, input in the page cache, output folder removed and `sync` before each run "
        "(not timed); a crop writes one 40x40 TIFF per page, each synced before its rename. "
        "Wall: seconds, and ms per page (median / N); CPU: user + system seconds of all the "
        "process's threads (median), less sensitive than wall time to other load on the machine "
        "and to the disk's sync latency. Growth: per page of the largest stack timed / per page "
        "of the smallest, wall and CPU (the target: at most 1.20).",
        "",
        "| binary | job | " + " | ".join(f"{n} pages: wall s (ms/page), CPU s" for n in counts)
        + " | growth, wall | growth, CPU |",
        "| --- | --- | " + " | ".join("---:" for _ in counts) + " | ---: | ---: |",
    ]
    for (name, label), by_n in medians.items():
        timed = [n for n in counts if n in by_n]
        cells = [f"{by_n[n][0]:.3f} ({1e3 * by_n[n][0] / n:.3f}), {by_n[n][1]:.3f}"
                 if n in by_n else "not run" for n in counts]
        first, last = timed[0], timed[-1]
        growth = [(by_n[last][i] / last) / (by_n[first][i] / first) for i in (0, 1)]
        lines.append(f"| {name} | `{label}` | " + " | ".join(cells)
                     + f" | {growth[0]:.2f} | {growth[1]:.2f} |")
    lines += ["", END]
    section = "\n".join(lines) + "\n"
    print(section)
    md = Path(a.out_md)
    old = md.read_text() if md.exists() else ""
    if BEGIN in old and END in old:
        before, rest = old.split(BEGIN, 1)
        after = rest.split(END, 1)[1].lstrip("\n")
        new = before + section + ("\n" + after if after else "")
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + section
    md.write_text(new)
    log(f"wrote {md}")


if __name__ == "__main__":
    main()
