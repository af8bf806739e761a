#!/usr/bin/env python3
"""ctstack pyramid against floors and Python peers, timed as whole processes.

usage: python3 benches/compare.py [--slices 64] [--size 2752] [--runs 5] [--cold]
                                  [--lzw] [--workdir DIR] [--out-md FILE]
                                  [--out-png FILE] [--skip-setup] [--venv DIR]
                                  [--cth-venv DIR]

Run it with the system python3. It makes its own venv (default
target/compare-venv), pip-installs numpy, tifffile, Pillow, imagecodecs,
tinybrain and matplotlib into it, and re-executes itself there. Unless
--skip-setup it also runs `cargo build --release`. It compiles benches/floor.c
with `cc -O3 -march=native` into target/compare-bin/.

It writes a deterministic CT phantom (ellipsoids of different densities plus
seeded Gaussian noise, uint16, little-endian, uncompressed, slice_0000.tif ...)
into WORKDIR/raw, an 8-bit copy (each sample >> 8) into WORKDIR/u8, and with
--lzw an LZW copy of the 16-bit pixels into WORKDIR/lzw; all are reused while
their JSON markers match the parameters. WORKDIR/first16 links the first 16
slices of raw, for the peak-RSS row of a shorter stack.

CTHarvester's own Rust module (ct_thumbnail, PyO3) is a peer when --cth-venv
holds it: build it with `../shared/tools/cth_rust_build.sh CTHARVESTER_CHECKOUT
target/cth/venv`; it is driven by ../shared/tools/cth_rust.py the way CTHarvester
calls it.

Every contender is a separate process timed end to end (wall clock): one
warm-up round, then --runs rounds, the contenders taking turns within each
round. Before each run its output directory is deleted and os.sync() is called
(not timed); with --cold ctstack and the floors are timed again with the input files
evicted from the page cache (posix_fadvise DONTNEED), in a second table. Each contender is started
through `floor spawn` (benches/floor.c), which times it from fork to wait4 and
takes its ru_maxrss from wait4's rusage: a child forked straight from this
Python process would report the harness's own RSS as its peak. After the runs every pyramid is checked against
ctstack's: level 1 slice 0 and the last level's last slice must be identical
(tinybrain: max abs difference reported instead).

Prints markdown tables to stdout, writes them into the compare.py block of
--out-md (benches/results.md, whose other text stays) and a bar chart to
--out-png. Progress goes to stderr. Exits non-zero if a contender fails or an
output does not match.
"""
import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHES = ROOT / "benches"
# The shared tools that build and drive CTHarvester's module (not part of this repository:
# no script that builds another project's code is committed here).
CTH_TOOLS = Path(os.environ.get("CTSTACK_CTH_TOOLS", BENCHES.parent.parent / "shared" / "tools"))
PACKAGES = ["numpy", "tifffile", "Pillow", "imagecodecs", "tinybrain", "matplotlib"]
GENERATOR_VERSION = 1
SEED = 20251125


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--slices", type=int, default=64, help="number of slices (default 64)")
    p.add_argument("--size", type=int, default=2752, help="slice width and height (default 2752)")
    p.add_argument("--runs", type=int, default=5, help="timed runs per contender (default 5)")
    p.add_argument("--cold", action="store_true",
                   help="also time with the input evicted from the page cache before each run")
    p.add_argument("--lzw", action="store_true", help="also time on an LZW-compressed copy")
    p.add_argument("--workdir", default=str(ROOT / "target" / "compare-data"),
                   help="where the stack and outputs go (default target/compare-data)")
    p.add_argument("--out-md", default=str(BENCHES / "results.md"),
                   help="the results page: the tables replace the compare.py block in it")
    p.add_argument("--out-png", default=str(BENCHES / "results.png"))
    p.add_argument("--skip-setup", action="store_true",
                   help="no cargo build and no pip install (the venv must exist)")
    p.add_argument("--venv", default=str(ROOT / "target" / "compare-venv"))
    p.add_argument("--cth-venv", default=str(ROOT / "target" / "cth" / "venv"),
                   help="venv holding CTHarvester's Rust module ct_thumbnail, built by "
                        "../shared/tools/cth_rust_build.sh (its row says 'not run' without it)")
    a = p.parse_args(argv)
    if a.slices < 1 or a.size < 2 or a.runs < 1:
        p.error("--slices and --runs must be >= 1 and --size >= 2")
    return a


# ---------------------------------------------------------------- setup (system python)

def in_venv(venv):
    try:
        return Path(sys.prefix).resolve() == Path(venv).resolve()
    except OSError:
        return False


def bootstrap(a, argv):
    """Make the venv if needed and re-execute this script inside it."""
    venv = Path(a.venv)
    py = venv / "bin" / "python"
    marker = venv / ".compare-packages"
    want = "\n".join(PACKAGES) + "\n"
    if a.skip_setup:
        if not py.exists():
            sys.exit(f"compare: --skip-setup but no venv at {venv}; run once without it")
    else:
        t0 = time.perf_counter()
        if not py.exists():
            log(f"setup: creating venv {venv}")
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        if not marker.exists() or marker.read_text() != want:
            log(f"setup: pip install {' '.join(PACKAGES)}")
            subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
                           check=True)
            subprocess.run([str(py), "-m", "pip", "install", "--quiet", *PACKAGES], check=True)
            marker.write_text(want)
            log(f"setup: venv ready in {time.perf_counter() - t0:.1f} s")
        else:
            log(f"setup: venv {venv} already has the packages")
    env = dict(os.environ, COMPARE_ORIGINAL_ARGV=json.dumps(argv))
    os.execve(str(py), [str(py), str(Path(__file__).resolve()), *argv], env)


def build(a):
    binary = ROOT / "target" / "release" / "ctstack"
    if not a.skip_setup:
        log("setup: cargo build --release")
        r = subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT)
        if r.returncode != 0:
            sys.exit("compare: cargo build --release failed")
    if not binary.exists():
        sys.exit(f"compare: no {binary}; run without --skip-setup")
    floor_src = BENCHES / "floor.c"
    floor = ROOT / "target" / "compare-bin" / "floor"
    if not floor.exists() or floor.stat().st_mtime < floor_src.stat().st_mtime:
        floor.parent.mkdir(parents=True, exist_ok=True)
        cmd = ["cc", "-O3", "-march=native", "-pthread", "-o", str(floor), str(floor_src)]
        log("setup: " + shlex.join(cmd))
        r = subprocess.run(cmd)
        if r.returncode != 0:
            sys.exit("compare: compiling benches/floor.c failed")
    return binary, floor


# ---------------------------------------------------------------- data

# (centre x, y, z as fractions of W, H, N; semi-axes as fractions; density).
# The first is the specimen; later ones lie inside it and replace its density.
ELLIPSOIDS = [
    ((0.50, 0.50, 0.50), (0.45, 0.41, 0.60), 21000.0),
    ((0.36, 0.44, 0.46), (0.13, 0.09, 0.32), 36000.0),
    ((0.63, 0.57, 0.54), (0.09, 0.15, 0.24), 50000.0),
    ((0.54, 0.30, 0.50), (0.05, 0.04, 0.22), 61000.0),
    ((0.44, 0.67, 0.50), (0.09, 0.05, 0.27), 5000.0),  # a cavity
]


def make_slice(k, n, size, np):
    """Slice k of n: a (size, size) little-endian uint16 array, deterministic in (SEED, k)."""
    h = w = size
    img = np.full((h, w), 2400.0, dtype=np.float32)
    zf = (k + 0.5) / n
    for (cx, cy, cz), (ax, ay, az), dens in ELLIPSOIDS:
        dz = (zf - cz) / az
        r2 = 1.0 - dz * dz
        if r2 <= 0.0:
            continue
        r = r2 ** 0.5
        y0, y1 = max(0, int((cy - ay * r) * h) - 1), min(h, int((cy + ay * r) * h) + 2)
        x0, x1 = max(0, int((cx - ax * r) * w) - 1), min(w, int((cx + ax * r) * w) + 2)
        ys = ((np.arange(y0, y1, dtype=np.float32) + 0.5) / h)[:, None]
        xs = ((np.arange(x0, x1, dtype=np.float32) + 0.5) / w)[None, :]
        inside = ((xs - cx) / ax) ** 2 + ((ys - cy) / ay) ** 2 <= r2
        img[y0:y1, x0:x1][inside] = dens
    rng = np.random.default_rng([SEED, k])
    img += rng.standard_normal((h, w), dtype=np.float32) * 400.0
    np.clip(img, 0, 65535, out=img)
    return np.rint(img).astype("<u2")


def slice_paths(d, n):
    return [d / f"slice_{k:04d}.tif" for k in range(n)]


def link_first(workdir, paths, n):
    """WORKDIR/first<n>: symlinks to the first n slices, remade each run."""
    d = workdir / f"first{n}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    links = []
    for p in paths[:n]:
        (d / p.name).symlink_to(p)
        links.append(d / p.name)
    return links


def ensure_stack(a, workdir, kind):
    """WORKDIR/<kind> holding the stack; regenerated unless its marker matches."""
    import numpy as np
    import tifffile

    d = workdir / kind
    marker = workdir / f"{kind}.json"
    params = {"generator": GENERATOR_VERSION, "seed": SEED, "slices": a.slices,
              "size": a.size, "compression": kind}
    paths = slice_paths(d, a.slices)
    try:
        if json.loads(marker.read_text()) == params and all(p.exists() for p in paths):
            log(f"data: reusing {d}")
            return paths
    except (OSError, ValueError):
        pass
    if marker.exists():
        marker.unlink()
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    t0 = time.perf_counter()
    raw = workdir / "raw"
    for k, path in enumerate(paths):
        if kind == "raw":
            arr = make_slice(k, a.slices, a.size, np)
            kw = {}
        elif kind == "u8":
            arr = (tifffile.imread(raw / path.name) >> 8).astype(np.uint8)
            kw = {}
        else:
            arr = tifffile.imread(raw / path.name)  # the same pixels
            kw = {"compression": "lzw"}
        tmp = path.with_suffix(".tmp")
        tifffile.imwrite(tmp, arr, byteorder="<", photometric="minisblack", metadata=None, **kw)
        os.replace(tmp, path)
        if (k + 1) % 8 == 0 or k + 1 == a.slices:
            log(f"data: {kind} {k + 1}/{a.slices} slices")
    marker.write_text(json.dumps(params))
    mb = sum(p.stat().st_size for p in paths) / 1e6
    log(f"data: wrote {a.slices} slices {a.size}x{a.size} ({kind}, {mb:.0f} MB) "
        f"in {time.perf_counter() - t0:.1f} s")
    return paths


def pyramid_shape(n, size, min_size=500):
    """[(slices, width)] of levels 1.. ."""
    levels = []
    w = size
    while w > min_size:
        n, w = (n + 1) // 2, w // 2
        levels.append((n, w))
    return levels


# ---------------------------------------------------------------- contenders and timing

class Contender:
    def __init__(self, key, label, cmd, inputs, out=None, kind="pyramid", check="exact",
                 group="peer", section="raw", short=None):
        self.key, self.label, self.cmd, self.inputs, self.out = key, label, cmd, inputs, out
        self.short = short or label  # the chart's label
        self.kind, self.check, self.group, self.section = kind, check, group, section
        self.times = {"warm": [], "cold": []}
        self.rss = {"warm": [], "cold": []}
        self.resident = []  # fraction of input pages still cached right after eviction
        self.failed = None  # the error text, if it failed
        self.stdout = ""
        self.verdict = ""   # the output check, for the table
        self.bad = False    # the output check failed


def evict(paths):
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def run_once(c, mode, floor, tmp):
    """Run contender c once; (wall seconds, peak RSS MB) or None when it failed."""
    if c.out is not None:
        shutil.rmtree(c.out, ignore_errors=True)
    os.sync()
    if mode == "cold":
        evict(c.inputs)
        r = subprocess.run([str(floor), "resident", *map(str, c.inputs)],
                           capture_output=True, text=True)
        if r.returncode == 0:
            c.resident.append(float(r.stdout))
    out_path, err_path, res_path = tmp / "stdout", tmp / "stderr", tmp / "result"
    res_path.unlink(missing_ok=True)
    # Started through `floor spawn`, which forks the contender, times it from fork to
    # wait4 and writes its wall time and ru_maxrss: a child forked from this Python
    # process would report this process's RSS as its own peak.
    with open(out_path, "wb") as fo, open(err_path, "wb") as fe:
        code = subprocess.run([str(floor), "spawn", str(res_path), *map(str, c.cmd)],
                              stdin=subprocess.DEVNULL, stdout=fo, stderr=fe).returncode
    c.stdout = out_path.read_text(errors="replace")
    if code != 0 or not res_path.exists():
        err = err_path.read_text(errors="replace").strip()
        last = err.splitlines()[-1] if err else "no stderr"
        c.failed = f"exit {code}: {last}".replace("|", "/")
        log(f"FAILED {c.label}: exit {code}: {shlex.join(map(str, c.cmd))}\n{err}")
        return None
    secs, maxrss_kib = res_path.read_text().split()
    return float(secs), int(maxrss_kib) * 1024 / 1e6


def time_all(contenders, mode, runs, floor, tmp):
    total = runs + 1
    for r in range(total):
        tag = "warm-up" if r == 0 else f"run {r}/{runs}"
        for c in contenders:
            if c.failed or (mode == "cold" and c.group == "peer"):
                continue
            res = run_once(c, mode, floor, tmp)
            if res is None:
                continue
            dt, rss = res
            log(f"[{mode} {tag}] {c.label}: {dt:.3f} s, {rss:.0f} MB")
            if r > 0:
                c.times[mode].append(dt)
                c.rss[mode].append(rss)


# ---------------------------------------------------------------- checks

def tree(d):
    return sorted(str(p.relative_to(d)) for p in Path(d).rglob("*.tif"))


def verify_reference(ref, input_dir, a):
    """ref's pyramid has the expected files, and its level 1 slice 0 is the exact
    mean computed here from the input: ((sum of 8) + 4) >> 3."""
    import numpy as np
    import tifffile

    levels = pyramid_shape(a.slices, a.size)
    want = [f"{k}/{j:06d}.tif" for k, (n, _) in enumerate(levels, 1) for j in range(n)]
    if tree(ref.out) != sorted(want):
        return "unexpected file layout"
    s0 = tifffile.imread(input_dir / "slice_0000.tif")
    dtype = s0.dtype
    s0 = s0.astype(np.uint32)
    s1 = tifffile.imread(input_dir / f"slice_{min(1, a.slices - 1):04d}.tif").astype(np.uint32)
    h2 = w2 = a.size // 2
    s = s0[:2 * h2, :2 * w2] + s1[:2 * h2, :2 * w2]
    mean = ((s[0::2, 0::2] + s[1::2, 0::2] + s[0::2, 1::2] + s[1::2, 1::2] + 4) >> 3)
    got = tifffile.imread(ref.out / "1" / "000000.tif")
    if got.dtype != dtype or not np.array_equal(got, mean.astype(dtype)):
        return "level 1 slice 0 != (sum of 8 + 4) >> 3"
    return None


def check_outputs(contenders, refs, inputs, a):
    """Checks every output. refs: section -> its ctstack contender, each checked
    against numpy first; inputs: section -> the input directory."""
    import numpy as np
    import tifffile

    ok = True
    levels = pyramid_shape(a.slices, a.size)
    last = f"{len(levels)}/{levels[-1][0] - 1:06d}.tif"
    picks = ["1/000000.tif", last]
    ref_imgs = {}
    for section, ref in refs.items():
        if ref.failed:
            continue
        bad = verify_reference(ref, inputs[section], a)
        if bad:
            ref.verdict, ref.bad = bad, True
            continue
        ref.verdict = "reference (= numpy mean of input)"
        ref_imgs[section] = {p: tifffile.imread(ref.out / p) for p in picks}

    for c in contenders:
        if c.failed or any(c is r for r in refs.values()):
            continue
        if c.kind == "read":
            parts = c.stdout.split()
            total = sum(p.stat().st_size for p in c.inputs)
            if len(parts) >= 6 and int(parts[3]) == total:
                c.verdict = f"read {total / 1e6:.0f} MB, sum {parts[5]}"
            else:
                c.verdict, c.bad = f"read the wrong byte count: {c.stdout.strip()}", True
            continue
        if c.kind == "readwrite":
            parts = c.stdout.split()
            total = sum(p.stat().st_size for p in c.inputs)
            files = sorted(Path(c.out).glob("*.bin"))
            n1, w1 = levels[0]
            size = sum(f.stat().st_size for f in files)
            if (len(parts) >= 6 and int(parts[3]) == total and len(files) == n1
                    and size == n1 * w1 * w1 * 2):
                c.verdict = f"read {total / 1e6:.0f} MB, wrote {n1} files, {size / 1e6:.0f} MB"
            else:
                c.verdict, c.bad = f"read/wrote the wrong amount: {c.stdout.strip()}", True
            continue
        if c.kind == "write":
            files = sorted(Path(c.out).glob("*.bin"))
            n1, w1 = levels[0]
            size = sum(f.stat().st_size for f in files)
            if len(files) == n1 and size == n1 * w1 * w1 * 2:
                c.verdict = f"{n1} files, {size / 1e6:.0f} MB"
            else:
                c.verdict, c.bad = f"wrote {len(files)} files, {size} bytes", True
            continue
        if c.kind == "short":
            n = len(tree(c.out))
            want = sum(k for k, _ in pyramid_shape(len(c.inputs), a.size))
            c.verdict = f"{n} files" if n == want else f"{n} files, expected {want}"
            c.bad = n != want
            continue
        ref = refs.get(c.section)
        if c.section not in ref_imgs:
            c.verdict, c.bad = "no valid reference to compare with", True
            continue
        files = tree(c.out)
        if files != tree(ref.out):
            c.verdict, c.bad = f"file layout differs ({len(files)} vs {len(tree(ref.out))} files)", True
            continue
        diffs = []
        for p in picks:
            img = tifffile.imread(Path(c.out) / p)
            r = ref_imgs[c.section][p]
            if img.shape != r.shape or img.dtype != r.dtype:
                diffs.append(None)
            else:
                d = img.astype(np.int32) - r.astype(np.int32)
                diffs.append((int(np.max(np.abs(d))), float(np.mean(d))))
        if None in diffs:
            c.verdict, c.bad = "shape or dtype differs", True
        elif c.check == "exact":
            if max(d[0] for d in diffs) == 0:
                c.verdict = "identical"
            else:
                c.verdict, c.bad = f"DIFFERS (max abs diff {max(d[0] for d in diffs)})", True
        else:
            (m1, a1), (mk, ak) = diffs
            c.verdict = (f"differs from the exact mean: max abs {m1}, mean {a1:+.2f} (level 1); "
                         f"max abs {mk}, mean {ak:+.2f} (level {len(levels)})")
    for c in contenders:
        if c.bad:
            log(f"CHECK FAILED {c.label}: {c.verdict}")
            ok = False
    return ok


# ---------------------------------------------------------------- report

def sh(cmd, cwd=None):
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


def machine_info():
    from importlib import metadata

    import machine

    commit = sh(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT)
    if sh(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT) not in ("", "?"):
        commit += " (plus uncommitted changes)"
    versions = []
    for pkg in ["numpy", "tifffile", "Pillow", "imagecodecs", "tinybrain", "matplotlib"]:
        try:
            versions.append(f"{pkg} {metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{pkg} ?")
    return [
        ("CPU", machine.cpu()),
        ("kernel", platform.release()),
        ("load average at start", machine.load()),
        ("Rust", sh(["rustc", "--version"])),
        ("C compiler", sh(["cc", "--version"]).splitlines()[0]),
        ("ctstack commit", commit),
        ("Python", f"{platform.python_version()}; " + ", ".join(versions)),
        ("date", time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())),
    ]


def fmt_ratio(x):
    return f"{x:.2f}" if x < 10 else f"{x:.1f}"


def table(contenders, mode, floor_keys, ref_keys):
    """Markdown rows for one mode. floor_keys / ref_keys: section -> key of its floor
    row / its ctstack row."""
    by_key = {c.key: c for c in contenders}

    def median_of(key):
        c = by_key.get(key)
        return statistics.median(c.times[mode]) if c and c.times[mode] else None

    rows = ["| what | median s | min s | peak RSS MB | x floor | ctstack speedup | output check |",
            "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for c in contenders:
        if mode == "cold" and c.group == "peer":
            continue
        if c.failed or not c.times[mode]:
            why = (c.failed or "no runs").splitlines()[0]
            rows.append(f"| {c.label} | {'not run' if why.startswith('not run') else 'FAILED'} "
                        f"| | | | | {why} |")
            continue
        med = statistics.median(c.times[mode])
        fl_med = median_of(floor_keys.get(c.section))
        ref_med = median_of(ref_keys.get(c.section))
        xf = fmt_ratio(med / fl_med) if fl_med else ""
        sp = fmt_ratio(med / ref_med) if ref_med and c.kind != "short" else ""
        rows.append(f"| {c.label} | {med:.3f} | {min(c.times[mode]):.3f} | "
                    f"{max(c.rss[mode]):.0f} | {xf if c.kind != 'short' else ''} | {sp} | "
                    f"{c.verdict} |")
    return rows


BLOCK_BEGIN = "<!-- compare.py: begin (regenerated by benches/compare.py) -->"
BLOCK_END = "<!-- compare.py: end -->"


def update_block(path, begin, end, lines):
    """Replaces the text between the markers `begin` and `end` in `path` with
    `lines` (a file without them, or a new one, gets the block appended): one
    results page holds every benchmark's generated tables beside the text that
    reads them (benches/results.md; crop.py writes its own block there too)."""
    path = Path(path)
    text = path.read_text() if path.exists() else ""
    block = "\n".join([begin, "", *lines, "", end])
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text += ("\n" if text and not text.endswith("\n") else "") + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    log(f"updated the {begin} block of {path}")


def chart(contenders, modes, floor_key, title, path):
    """Horizontal bars of medians, one panel per (page cache state, input format)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"ctstack": "#1f77b4", "floor": "#9a9a9a", "peer": "#ff7f0e"}
    mode_names = {"warm": "input in the page cache", "cold": "input evicted from the page cache"}
    section_names = {"raw": "uncompressed 16-bit input", "u8": "uncompressed 8-bit input",
                     "lzw": "LZW-compressed input"}
    panels = []
    for mode in modes:
        for section in ("raw", "u8", "lzw"):
            shown = [c for c in contenders
                     if c.section == section and not c.failed and c.times[mode]]
            if shown:
                panels.append((mode, section, shown))
    if not panels:
        return
    heights = [len(shown) + 1.5 for _, _, shown in panels]
    fig, axes = plt.subplots(len(panels), 1, squeeze=False,
                             gridspec_kw={"height_ratios": heights},
                             figsize=(10, 0.42 * sum(heights) + 1.2))
    for ax, (mode, section, shown) in zip(axes[:, 0], panels):
        labels = [c.short for c in shown][::-1]
        meds = [statistics.median(c.times[mode]) for c in shown][::-1]
        mins = [min(c.times[mode]) for c in shown][::-1]
        cols = [colours[c.group] for c in shown][::-1]
        ax.barh(range(len(shown)), meds, color=cols, edgecolor="black", linewidth=0.5)
        ax.scatter(mins, range(len(shown)), marker="|", color="black", s=80, zorder=3,
                   label="min of runs")
        top = max(meds)
        for i, m in enumerate(meds):
            ax.text(m + top * 0.01, i, f"{m:.3f} s" if m < 1 else f"{m:.2f} s",
                    va="center", fontsize=9)
        fl = next((c for c in contenders if c.key == floor_key and c.times[mode]), None)
        if fl:
            ax.axvline(statistics.median(fl.times[mode]), color="red", linestyle="--", linewidth=1.2,
                       label="floor: read every byte of the uncompressed 16-bit stack once")
        ax.set_yticks(range(len(shown)))
        ax.set_yticklabels(labels, fontsize=9)
        ax.set_xlim(0, top * 1.15)
        ax.set_title(f"{section_names[section]}, {mode_names[mode]}", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel("wall-clock seconds, whole process (median; lower is better)")
    handles, hlabels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, hlabels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.035, 1, 0.98))
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- main

def main():
    argv = sys.argv[1:]
    a = parse_args(argv)
    if not in_venv(a.venv):
        bootstrap(a, argv)  # does not return
    original = json.loads(os.environ.get("COMPARE_ORIGINAL_ARGV", json.dumps(argv)))

    binary, floor = build(a)
    workdir = Path(a.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    raw = ensure_stack(a, workdir, "raw")
    u8 = ensure_stack(a, workdir, "u8")
    lzw = ensure_stack(a, workdir, "lzw") if a.lzw else None
    first16 = link_first(workdir, raw, 16)
    levels = pyramid_shape(a.slices, a.size)
    if not levels:
        sys.exit(f"compare: --size {a.size} makes no pyramid level (needs > 500)")
    out = workdir / "out"
    out.mkdir(exist_ok=True)
    tmp = workdir / "tmp"
    tmp.mkdir(exist_ok=True)
    py = sys.executable
    peers = str(BENCHES / "peers_pyramid.py")
    threads = os.cpu_count() or 1
    n1, w1 = levels[0]

    def ctstack(key, label, stack, extra=(), section="raw", kind="pyramid", short=None):
        return Contender(key, label, [str(binary), "pyramid", str(stack[0].parent), "--out",
                                      str(out / key), "--quiet", *extra], stack, out / key,
                         group="ctstack", section=section, kind=kind, short=short)

    def peer(key, label, method, stack, check="exact", section="raw", short=None):
        return Contender(key, label, [py, peers, "--method", method, str(stack[0].parent),
                                      "--out", str(out / key)], stack, out / key,
                         check=check, section=section, short=short)

    def floor_read(key, stack, section, what):
        return Contender(key, f"floor: read every input byte once, read() in 1 MiB chunks + "
                              f"sum (C -O3, {threads} threads){what}",
                         [str(floor), "read", str(threads), *map(str, stack)], stack,
                         kind="read", group="floor", section=section,
                         short=f"floor: read() 1 MiB chunks (C){what}")

    cth_py = Path(a.cth_venv) / "bin" / "python"
    cth_script = CTH_TOOLS / "cth_rust.py"

    def cth_rust(key, stack, section, what=""):
        c = Contender(key, f"CTHarvester's own Rust module (ct_thumbnail, {threads} threads){what}",
                      [str(cth_py), str(cth_script), str(stack[0].parent), str(out / key),
                       "--full"], stack, out / key, check="diff", section=section,
                      short=f"CTHarvester's Rust module{what}")
        built = list(Path(a.cth_venv).glob("lib/python*/site-packages/ct_thumbnail*"))
        if not cth_py.exists() or not built:
            c.failed = (f"not run: no ct_thumbnail in {a.cth_venv}; build it with ../shared/tools/cth_rust_build.sh "
                        f"CTHARVESTER_CHECKOUT {a.cth_venv}")
        return c

    never = ["--mmap", "never"]
    cs = [
        ctstack("ctstack", "ctstack pyramid (default: --mmap auto)", raw,
                short="ctstack pyramid (default)"),
        ctstack("ctstack-always", "ctstack pyramid --mmap always (maps)", raw,
                ["--mmap", "always"], short="ctstack --mmap always (maps)"),
        ctstack("ctstack-never", "ctstack pyramid --mmap never (streamed positional reads)",
                raw, never, short="ctstack --mmap never (streamed)"),
        floor_read("floor-read", raw, "raw", ""),
        Contender("floor-mmap", f"floor: read every input byte once, mmap + MAP_POPULATE + sum "
                                f"(C -O3, {threads} threads)",
                  [str(floor), "mmap", str(threads), *map(str, raw)], raw,
                  kind="read", group="floor", short="floor: mmap + sum (C)"),
        Contender("floor-write", f"floor: write level 1 ({n1} files of {w1}x{w1} u16, "
                                 f"{n1 * w1 * w1 * 2 / 1e6:.0f} MB), C write()",
                  [str(floor), "write", str(out / "floor-write"), str(n1), str(w1 * w1 * 2)],
                  [], out / "floor-write", kind="write", group="floor",
                  short=f"floor: write level 1, {n1 * w1 * w1 * 2 / 1e6:.0f} MB (C)"),
        Contender("floor-readwrite", f"floor: read every input byte once and write level 1: "
                                     f"each of {threads} threads reads a pair in 1 MiB chunks, "
                                     f"then writes its output (C -O3)",
                  [str(floor), "readwrite", str(threads), str(out / "floor-readwrite"),
                   str(w1 * w1 * 2), *map(str, raw)], raw, out / "floor-readwrite",
                  kind="readwrite", group="floor", short="floor: read + write level 1 (C)"),
        Contender("floor-readwrite-sync", f"floor: the same, each output synced (fdatasync) "
                                          f"before it is closed, as ctstack makes level 1 durable",
                  [str(floor), "readwrite-sync", str(threads), str(out / "floor-readwrite-sync"),
                   str(w1 * w1 * 2), *map(str, raw)], raw, out / "floor-readwrite-sync",
                  kind="readwrite", group="floor", short="floor: read + write level 1, synced (C)"),
        cth_rust("cth-rust", raw, "raw"),
        peer("tinybrain", "tinybrain 2x2x2 (Python, tifffile I/O)", "tinybrain", raw,
             check="diff"),
        peer("tifffile", "tifffile + numpy, exact mean (Python)", "tifffile", raw),
        peer("pil", "PIL + numpy, exact mean (Python)", "pil", raw,
             short="PIL + numpy, exact (Python)"),
        peer("cth-python", "CTHarvester's Python fallback (PIL + numpy, its algorithm: "
                           "floors twice, 1 thread, each level read back from disk)",
             "cth-python", raw, check="diff", short="CTHarvester's Python fallback"),
        ctstack("ctstack-16", f"ctstack pyramid, first 16 slices only (for peak RSS)", first16,
                kind="short", short="ctstack, 16 slices"),
        ctstack("ctstack-16-never", f"ctstack pyramid --mmap never, first 16 slices only",
                first16, never, kind="short", short="ctstack --mmap never, 16 slices"),
        ctstack("u8-ctstack", "8-bit: ctstack pyramid (default)", u8, section="u8"),
        ctstack("u8-ctstack-never", "8-bit: ctstack pyramid --mmap never", u8, never,
                section="u8"),
        floor_read("u8-floor-read", u8, "u8", " on the 8-bit stack"),
        cth_rust("u8-cth-rust", u8, "u8", " on the 8-bit stack"),
    ]
    if lzw:
        cs += [
            ctstack("lzw-ctstack", "LZW: ctstack pyramid", lzw, section="lzw"),
            peer("lzw-tifffile", "LZW: tifffile + numpy (Python)", "tifffile", lzw,
                 section="lzw"),
            peer("lzw-pil", "LZW: PIL + numpy (Python)", "pil", lzw, section="lzw"),
        ]
    by_key = {c.key: c for c in cs}
    ref_keys = {"raw": "ctstack", "u8": "u8-ctstack", "lzw": "lzw-ctstack"}
    floor_keys = {"raw": "floor-read", "u8": "u8-floor-read", "lzw": "floor-read"}
    modes = ["warm"] + (["cold"] if a.cold else [])

    info = machine_info()
    for mode in modes:
        log(f"timing ({mode}): {len(cs)} contenders, 1 warm-up + {a.runs} runs each")
        time_all(cs, mode, a.runs, floor, tmp)

    refs = {s: by_key[k] for s, k in ref_keys.items() if k in by_key}
    inputs = {"raw": raw[0].parent, "u8": u8[0].parent, "lzw": raw[0].parent}
    ok = not any(c.failed and not c.failed.startswith("not run") for c in cs)
    log("checking outputs against ctstack's")
    ok = check_outputs(cs, refs, inputs, a) and ok
    shutil.rmtree(tmp, ignore_errors=True)

    raw_mb = sum(p.stat().st_size for p in raw) / 1e6
    data = (f"{a.slices} slices of {a.size}x{a.size} uint16, uncompressed: {raw_mb:.0f} MB "
            f"(synthetic CT phantom, seed {SEED}); 8-bit copy (each sample >> 8): "
            f"{sum(p.stat().st_size for p in u8) / 1e6:.0f} MB")
    if lzw:
        data += f"; LZW copy: {sum(p.stat().st_size for p in lzw) / 1e6:.0f} MB"
    lv = ", ".join(f"{w}x{w} ({n} slices)" for n, w in levels)
    cmd = shlex.join(["python3", "benches/compare.py", *original])
    md = ["## The pyramid: ctstack against floors and peers", ""]
    md += [f"- **{k}**: {v}" for k, v in info]
    md += [f"- **data**: {data}", f"- **pyramid levels**: {lv}",
           f"- **regenerate**: `{cmd}`",
           f"- **method**: each row is one process timed end to end (wall clock); median and "
           f"min of {a.runs} runs after one warm-up run, the rows taking turns; before each run "
           f"its output is deleted and os.sync() called (not timed). Each process is started by "
           f"a small C launcher (`floor spawn`) that times it from fork to wait4; peak RSS is "
           f"its ru_maxrss from wait4, largest of the runs. x floor: median / the median of the "
           f"best read floor on the same bytes (read() in 1 MiB chunks, {threads} threads; the "
           f"8-bit rows use it on the 8-bit stack, the LZW rows the uncompressed one). ctstack "
           f"speedup: median / ctstack's default median on the same input."]
    for mode in modes:
        md += ["", {"warm": "### Input in the page cache (warm)",
                    "cold": "### Input evicted from the page cache before each run (cold)"}[mode],
               ""]
        if mode == "cold":
            res = [f for c in cs for f in c.resident]
            md += [f"Eviction: os.sync() then posix_fadvise(POSIX_FADV_DONTNEED) on every input "
                   f"file; at most {100 * max(res or [0]):.1f}% of input pages were still cached "
                   f"right after it (mincore). Only ctstack and the floors are timed cold: the "
                   f"cold targets are ratios to the cold floor.", ""]
        md += table(cs, mode, floor_keys, ref_keys)
    md += ["", "Notes:", "",
           "- ctstack averages on one thread per core; CTHarvester's Rust module uses rayon's "
           "pool (one thread per core); the Python peers run on one thread (numpy's elementwise "
           "operations do not use more; CTHarvester's fallback chooses one thread).",
           "- The tifffile / PIL / tinybrain peers keep each level in memory and average the "
           "next level from it; they write with tifffile.imwrite / PIL save, uncompressed. "
           "CTHarvester's fallback reads every level back from disk, as its code does.",
           "- Rows marked 'differs from the exact mean' compute another formula: tinybrain "
           "truncates (sum // 8); CTHarvester's Rust module rounds twice ((a+b+c+d+2)>>2 per "
           "slice, then (x+y+1)/2); CTHarvester's Python fallback floors twice ((a+b)//2, then "
           "sum of 4 // 4) on 16-bit data and on 8-bit data adds with ImageChops and resizes "
           "bicubically. The max and mean of (theirs - exact) are given for level 1 slice 0 and "
           "the last slice of the last level.",
           "- CTHarvester's module cannot stop early or write elsewhere: ../shared/tools/cth_rust.py "
           "links the input into a staging folder whose .thumbnail points at the output; the "
           "time covers the whole pyramid, like ctstack's."]
    print("\n".join(md))
    update_block(a.out_md, BLOCK_BEGIN, BLOCK_END, md)
    title = (f"ctstack pyramid vs peers: {a.slices} slices of {a.size}x{a.size} u16 "
             f"({raw_mb:.0f} MB), median of {a.runs} run{'s' if a.runs > 1 else ''}")
    try:
        Path(a.out_png).parent.mkdir(parents=True, exist_ok=True)
        chart(cs, modes, "floor-read", title, a.out_png)
        log(f"wrote {a.out_md} and {a.out_png}")
    except Exception as e:  # the table is the result; a chart failure is reported, not fatal
        log(f"compare: chart failed: {e!r}")
        ok = False
    if not ok:
        log("compare: FAILED (see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
