"""Build a CT stack's thumbnail pyramid and load its smallest level, the way
CTHarvester's thumbnail module does, with the ctstack Python binding.

    python examples/python_thumbnails.py fixtures/stack --min-size 80 --out /tmp/thumbs

The build runs as a ctstack.PyramidJob on a background thread; this script
polls it every 0.1 s, as a GUI would from a timer, and draws a text progress
bar. Ctrl-C cancels the job (no partial file is left behind; a later run
resumes). The smallest level is then read back (ctstack.open_pyramid) as a
volume: a numpy array of shape (slices, height, width).

Needs numpy. Uses the installed ctstack package (pip install .); in a
checkout used without installing, the package in ../python with the library
named by CTSTACK_LIBRARY (e.g. target/release/libctstack.so).
"""

import argparse
import importlib.util
import os
import re
import sys
import time

if importlib.util.find_spec("ctstack") is None:
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(os.path.dirname(_here), "python"))

import ctstack  # noqa: E402 (after the path set-up above)
import numpy as np  # noqa: E402

POLL_SECONDS = 0.1
BAR_WIDTH = 40


def natural_key(name):
    """Sort key for natural order: slice2 before slice10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def tiff_files(directory):
    """The .tif/.tiff files of ``directory``, in natural order."""
    names = [n for n in os.listdir(directory) if n.lower().endswith((".tif", ".tiff"))]
    return [os.path.join(directory, n) for n in sorted(names, key=natural_key)]


def draw_bar(done, total, stream=sys.stderr):
    """Draws ``done/total`` as a one-line text progress bar."""
    fraction = done / total if total else 0.0
    filled = int(round(BAR_WIDTH * fraction))
    bar = "#" * filled + "." * (BAR_WIDTH - filled)
    stream.write("\r[%s] %d/%d %3d%%" % (bar, done, total, 100 * fraction))
    stream.flush()


def build(input_dir, output_dir, min_size):
    """Builds the pyramid with a progress bar; returns False if cancelled."""
    with ctstack.PyramidJob(input_dir, output_dir, min_size) as job:
        try:
            while job.running:
                draw_bar(*job.progress)
                time.sleep(POLL_SECONDS)
            done, total = job.progress
            if total:
                draw_bar(done, total)
            sys.stderr.write("\n")
            job.wait()
        except KeyboardInterrupt:
            sys.stderr.write("\ncancelling...\n")
            job.cancel()
            try:
                job.wait()
            except ctstack.CancelledError:
                return False
            # It had finished before the cancel took effect.
    return True


def smallest_level(output_dir, input_dir):
    """``(k, volume)`` of the pyramid's smallest level, read back by the build's
    manifest as one (slices, height, width) array; level 0 (the input itself)
    if the input needed no level."""
    with ctstack.open_pyramid(output_dir) as pyramid:
        if len(pyramid):
            level = pyramid[len(pyramid)]
            return level.k, np.asarray(level)
    return 0, load_volume(input_dir)


def load_volume(directory):
    """The slices of ``directory`` stacked into one (n, h, w) numpy array."""
    paths = tiff_files(directory)
    if not paths:
        raise SystemExit("no .tif files in %s" % directory)
    with ctstack.Slice(paths[0]) as first:
        volume = np.empty((len(paths), first.height, first.width), dtype=first.array().dtype)
    for i, path in enumerate(paths):
        with ctstack.Slice(path) as s:
            # array() is a zero-copy view; the assignment copies into the volume.
            volume[i] = s.array()
    return volume


def main(argv=None):
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input_dir", help="directory of the CT slices (.tif/.tiff)")
    parser.add_argument("--out", help="output directory (default: <input_dir>/.thumbnail)")
    parser.add_argument(
        "--min-size",
        type=int,
        default=500,
        help="halve while the width or height exceeds this (default 500)",
    )
    args = parser.parse_args(argv)
    output_dir = args.out or os.path.join(args.input_dir, ".thumbnail")

    started = time.monotonic()
    try:
        if not build(args.input_dir, output_dir, args.min_size):
            print("cancelled", file=sys.stderr)
            return 130
    except ctstack.CtstackError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    print("pyramid built in %.2f s: %s (ctstack %s)" % (elapsed, output_dir, ctstack.version()))

    level, volume = smallest_level(output_dir, args.input_dir)
    print(
        "level %d: shape %s, dtype %s, min %d, max %d"
        % (level, volume.shape, volume.dtype, volume.min(), volume.max())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
