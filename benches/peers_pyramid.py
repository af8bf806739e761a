#!/usr/bin/env python3
"""The same thumbnail pyramid as `ctstack pyramid`, built the way Python tools do.

usage: peers_pyramid.py --method tifffile|pil|tinybrain|cth-python INPUT_DIR
                        --out OUT_DIR [--min-size 500]

Level k+1 slice j is the 2x2x2 mean of level-k slices 2j and 2j+1 (a last odd
slice is paired with itself); width and height halve with floor; halving goes
on while width or height exceeds --min-size; level k goes to OUT_DIR/<k>/<j:06d>.tif.
Each level is computed from the previous one kept in memory (level 1 from the
input files), one pair at a time, on one thread.

  tifffile   tifffile.imread; numpy uint32 sums, out = (sum of 8 + 4) >> 3 (the
             exact formula); tifffile.imwrite (uncompressed)
  pil        PIL.Image.open + np.array (CTHarvester's Python fallback); the same
             numpy mean; Image.fromarray(arr) (mode I;16) .save
  cth-python CTHarvester's Python fallback as its code does it
             (core/thumbnail_worker.py, ThumbnailWorker at commit 4b2928c): every
             level read back from the previous level's files on disk
             (PIL.Image.open + copy, level 1 from the input), one thread (its
             ThumbnailManager._determine_optimal_thread_count picks 1).
             16-bit pairs: avg = (a + b) // 2, then the 2x2 sum // 4: it floors
             twice, so it is up to 1 below the exact mean per level (and
             drifts further down the levels); an odd last slice: 2x2 sum // 4.
             8-bit pairs: ImageChops.add(a, b, scale=2.0) then
             Image.resize((w // 2, h // 2)) with PIL's default filter
             (bicubic), not an average. Saved with Image.fromarray(arr).save.
  tinybrain  tifffile.imread; the pair stacked as a Fortran-order (W, H, 2)
             uint16 array; tinybrain.downsample_with_averaging(img,
             factor=(2, 2, 2), num_mips=1); tifffile.imwrite. tinybrain's
             2x2x2 kernel divides with truncation (sum // 8, no +4 rounding)
             and rounds odd sizes up; the output is cropped to the floor size,
             so values may be below the exact mean by 1 per level.
"""
import argparse
import os
import sys

import numpy as np


def list_slices(input_dir):
    names = sorted(n for n in os.listdir(input_dir)
                   if n.lower().endswith((".tif", ".tiff")) and not n.startswith("."))
    if not names:
        sys.exit(f"peers_pyramid: no .tif slices in {input_dir}")
    return [os.path.join(input_dir, n) for n in names]


def mean_2x2x2(a, b):
    """Exact 2x2x2 mean of two equal-shape uint16 slices: (sum of 8 + 4) >> 3."""
    h2, w2 = a.shape[0] // 2, a.shape[1] // 2
    s = a[:2 * h2, :2 * w2].astype(np.uint32)
    s += b[:2 * h2, :2 * w2]
    q = s[0::2, 0::2] + s[1::2, 0::2]
    q += s[0::2, 1::2]
    q += s[1::2, 1::2]
    q += 4
    q >>= 3
    return q.astype(np.uint16)


def make_method(method):
    """(read(path) -> 2-D uint16 array, mean(a, b) -> array, write(path, arr))."""
    if method == "tifffile":
        import tifffile

        def write(path, arr):
            tifffile.imwrite(path, arr, photometric="minisblack")

        return tifffile.imread, mean_2x2x2, write

    if method == "pil":
        from PIL import Image

        def read(path):
            with Image.open(path) as im:
                return np.array(im)

        def write(path, arr):
            Image.fromarray(arr).save(path)

        return read, mean_2x2x2, write

    if method == "tinybrain":
        import tifffile
        import tinybrain

        def mean(a, b):
            h2, w2 = a.shape[0] // 2, a.shape[1] // 2
            # (2, H, W) C order transposed is (W, H, 2) Fortran order: tinybrain's
            # x, y, z layout, without a copy.
            img = np.stack([a, b]).T
            out = tinybrain.downsample_with_averaging(img, factor=(2, 2, 2), num_mips=1)[0]
            return np.ascontiguousarray(out[:w2, :h2, 0].T)

        def write(path, arr):
            tifffile.imwrite(path, arr, photometric="minisblack")

        return tifffile.imread, mean, write

    raise SystemExit(f"peers_pyramid: unknown method {method}")


def cth_python(paths, out, min_size):
    """CTHarvester's Python fallback (see the module doc): level by level, each
    read back from disk, one pair at a time, on one thread."""
    from PIL import Image, ImageChops

    def load(path):
        with Image.open(path) as im:
            is_16bit = im.mode in ("I;16", "I;16L", "I;16B")
            if is_16bit:
                return im.copy(), True
            if im.mode[0] == "I" or im.mode == "P":
                return im.convert("L"), False
            return im.copy(), False

    def down2x2(arr32, h, w):
        return ((arr32[0:2 * h:2, 0:2 * w:2] + arr32[0:2 * h:2, 1:2 * w:2]
                 + arr32[1:2 * h:2, 0:2 * w:2] + arr32[1:2 * h:2, 1:2 * w:2]) // 4
                ).astype(np.uint16)

    def single(img, is_16bit):
        if not is_16bit:
            return img.resize((img.width // 2, img.height // 2))
        arr = np.array(img, dtype=np.uint16)
        h, w = arr.shape[0] // 2, arr.shape[1] // 2
        return Image.fromarray(down2x2(arr.astype(np.uint32), h, w))

    def pair(img1, img2, is_16bit):
        if not is_16bit:
            new = ImageChops.add(img1, img2, scale=2.0)
            return new.resize((img1.width // 2, img1.height // 2))
        a1 = np.array(img1, dtype=np.uint16)
        a2 = np.array(img2, dtype=np.uint16)
        avg = ((a1.astype(np.uint32) + a2.astype(np.uint32)) // 2).astype(np.uint16)
        h, w = avg.shape[0] // 2, avg.shape[1] // 2
        return Image.fromarray(down2x2(avg.astype(np.uint32), h, w))

    with Image.open(paths[0]) as im:
        w, h = im.size
    level = 0
    while w > min_size or h > min_size:
        level += 1
        outdir = os.path.join(out, str(level))
        os.makedirs(outdir, exist_ok=True)
        written = []
        for j in range((len(paths) + 1) // 2):
            img1, b1 = load(paths[2 * j])
            if 2 * j + 1 < len(paths):
                img2, b2 = load(paths[2 * j + 1])
                new = pair(img1, img2, b1 and b2)
            else:
                new = single(img1, b1)
            dst = os.path.join(outdir, f"{j:06d}.tif")
            new.save(dst)
            written.append(dst)
        paths = written
        w, h = w // 2, h // 2
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input_dir")
    p.add_argument("--out", required=True)
    p.add_argument("--method", required=True,
                   choices=["tifffile", "pil", "tinybrain", "cth-python"])
    p.add_argument("--min-size", type=int, default=500)
    a = p.parse_args(argv)
    if a.method == "cth-python":
        return cth_python(list_slices(a.input_dir), a.out, a.min_size)

    read, mean, write = make_method(a.method)
    paths = list_slices(a.input_dir)
    first = read(paths[0])
    if first.dtype != np.uint16 or first.ndim != 2:
        sys.exit(f"peers_pyramid: {paths[0]}: expected 2-D uint16, got {first.dtype} {first.shape}")
    h, w = first.shape

    prev = None  # the previous level's slices (None: read the input files)
    n = len(paths)
    level = 0
    while w > a.min_size or h > a.min_size:
        level += 1
        outdir = os.path.join(a.out, str(level))
        os.makedirs(outdir, exist_ok=True)
        cur = []
        for j in range((n + 1) // 2):
            i0, i1 = 2 * j, min(2 * j + 1, n - 1)
            if prev is None:
                s0 = first if i0 == 0 else read(paths[i0])
                s1 = s0 if i1 == i0 else read(paths[i1])
            else:
                s0, s1 = prev[i0], prev[i1]
            out = mean(s0, s1)
            write(os.path.join(outdir, f"{j:06d}.tif"), out)
            cur.append(out)
        first = None
        prev, n = cur, len(cur)
        h, w = h // 2, w // 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
