#!/usr/bin/env python3
"""Write seeded benchmark masks as uncompressed NIfTI-1 (uint8), numpy only.

Used by scripts/gpu_check.sh on GPU machines that have numpy but no nibabel.
Usage: python3 scripts/make_bench_volumes.py OUTDIR [--sizes 192x192x160,512x512x512]

Volumes: sparse_<size>.nii (random balls, ~1.3 % foreground) for every size, and
for 512^3 also random_<size>.nii (p = 0.5).
"""
import argparse
import struct
from pathlib import Path

import numpy as np


def sparse_blobs(shape, seed, target=0.013):
    rng = np.random.default_rng(seed)
    m = np.zeros(shape, dtype=np.uint8)
    filled = 0
    total = m.size
    while filled < target * total:
        r = int(rng.integers(2, 9))
        c = [int(rng.integers(0, s)) for s in shape]
        sl = tuple(slice(max(0, c[a] - r), min(shape[a], c[a] + r + 1)) for a in range(3))
        g = np.ogrid[sl]
        ball = sum((g[a] - c[a]) ** 2 for a in range(3)) <= r * r
        sub = m[sl]
        filled += int((ball & (sub == 0)).sum())
        sub[ball] = 1
    return m


def write_nifti(path, arr):
    """Minimal NIfTI-1 single file, little endian, uint8, 1 mm isotropic."""
    hdr = bytearray(352)
    struct.pack_into("<i", hdr, 0, 348)
    dims = [3, *arr.shape, 1, 1, 1, 1]
    struct.pack_into("<8h", hdr, 40, *dims)
    struct.pack_into("<hh", hdr, 70, 2, 8)  # datatype uint8, bitpix
    struct.pack_into("<8f", hdr, 76, 1, 1, 1, 1, 1, 1, 1, 1)
    struct.pack_into("<f", hdr, 108, 352.0)
    struct.pack_into("<f", hdr, 112, 1.0)
    hdr[123] = 2  # mm
    hdr[344:348] = b"n+1\0"
    with open(path, "wb") as f:
        f.write(hdr)
        f.write(np.asfortranarray(arr).tobytes(order="F"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--sizes", default="192x192x160,512x512x512")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(a.sizes.split(",")):
        shape = tuple(int(x) for x in s.split("x"))
        write_nifti(out / f"sparse_{s}.nii", sparse_blobs(shape, 1000 + i))
        if shape == (512, 512, 512):
            rng = np.random.default_rng(7)
            write_nifti(out / f"random_{s}.nii", (rng.random(shape, dtype=np.float32) < 0.5).astype(np.uint8))
        print(f"wrote {s}", flush=True)


if __name__ == "__main__":
    main()
