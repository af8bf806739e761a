#!/usr/bin/env python3
"""Make the same 8-bit stack as BMP (NRecon-like: bottom-up, gray palette) and
as uncompressed TIFF, to time `ctstack pyramid` on each (issue 12).

usage: python benches/bmp_vs_tiff.py OUT_DIR [--count 64] [--size 2048]

Writes OUT_DIR/bmp/scan_rec00000000.bmp ... and OUT_DIR/tif/slice_0000.tif ...
(same pixels). Width 2047 by default-size minus one, so BMP rows carry a byte
of padding as NRecon's often do. Then, for example:

    hyperfine -w 2 -r 10 -p 'rm -rf OUT/bmp/.thumbnail OUT/tif/.thumbnail' \\
      'target/release/ctstack pyramid OUT/bmp' 'target/release/ctstack pyramid OUT/tif'
"""
import argparse
import os
import struct

import numpy as np
import tifffile


def bmp_bytes(img):
    h, w = img.shape
    stride = (w + 3) // 4 * 4
    palette = b"".join(bytes((i, i, i, 0)) for i in range(256))
    offset = 14 + 40 + len(palette)
    padded = np.zeros((h, stride), dtype=np.uint8)
    padded[:, :w] = img
    rows = padded[::-1].tobytes()
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 8, 0, len(rows), 0, 0, 256, 256)
    return b"BM" + struct.pack("<IHHI", offset + len(rows), 0, 0, offset) + info + palette + rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--size", type=int, default=2048)
    a = ap.parse_args()
    w, h = a.size - 1, a.size
    os.makedirs(os.path.join(a.out, "bmp"), exist_ok=True)
    os.makedirs(os.path.join(a.out, "tif"), exist_ok=True)
    rng = np.random.default_rng(12)
    y, x = np.mgrid[0:h, 0:w]
    base = ((x * 0.05 + y * 0.03) % 200).astype(np.int16)
    for k in range(a.count):
        img = np.clip(base + rng.integers(0, 56, size=(h, w)), 0, 255).astype(np.uint8)
        with open(os.path.join(a.out, "bmp", f"scan_rec{k:08d}.bmp"), "wb") as f:
            f.write(bmp_bytes(img))
        tifffile.imwrite(os.path.join(a.out, "tif", f"slice_{k:04d}.tif"), img,
                         photometric="minisblack", metadata=None)


if __name__ == "__main__":
    main()
