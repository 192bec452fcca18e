#!/usr/bin/env python3
"""Connected-component labelling reference fixtures from cc3d (connected-components-3d 4.1.1).

Writes fixtures/ccl/{inputs,labels}/*.nii.gz and fixtures/ccl/manifest.json.
Inputs are uint8 binary masks (plus references to the real masks in fixtures/sct,
binarised as value != 0); labels are uint32, computed by
cc3d.connected_components(np.asfortranarray(mask.astype(np.uint8)), connectivity=c,
out_dtype=np.uint32) for c in 6, 18, 26.

The script asserts the numbering convention: labels are 1..N, numbered in the order
of each component's first voxel in Fortran order (axis 0 = NIfTI i fastest).  It also
cross-checks the partition against scipy.ndimage.label.

Deterministic: fixed seeds, sorted output, gzip without timestamps.
"""
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _venv  # noqa: E402

_venv.ensure()


import cc3d  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from _fixio import dump_json, save_nifti  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "ccl"
SCT = ROOT / "fixtures" / "sct"
CONNS = (6, 18, 26)
SCIPY_RANK = {6: 1, 18: 2, 26: 3}


def random_mask(shape, p, seed):
    rng = np.random.default_rng(seed)
    if p <= 0.0:
        return np.zeros(shape, dtype=np.uint8)
    if p >= 1.0:
        return np.ones(shape, dtype=np.uint8)
    return (rng.random(shape) < p).astype(np.uint8)


def blob_mask(shape, n, rmin, rmax, seed):
    """Union of n random balls (centres anywhere in the volume, so some touch the border)."""
    rng = np.random.default_rng(seed)
    m = np.zeros(shape, dtype=bool)
    grid = np.indices(shape, dtype=np.float64)
    for _ in range(n):
        c = [rng.uniform(0, s - 1) for s in shape]
        r = rng.uniform(rmin, rmax)
        d2 = sum((g - ci) ** 2 for g, ci in zip(grid, c))
        m |= d2 <= r * r
    return m.astype(np.uint8)


def checkerboard(shape):
    i, j, k = np.indices(shape)
    return (((i + j + k) % 2) == 0).astype(np.uint8)


def synthetic_inputs():
    cases = []
    seed = 1000
    spec = [
        ((17, 23, 11), [0.05, 0.2, 0.35, 0.5]),
        ((1, 31, 29), [0.2, 0.5]),
        ((33, 1, 7), [0.35, 0.8]),
        ((40, 40, 1), [0.05, 0.5]),
        ((5, 6, 7), [0.0, 0.5, 1.0]),
        ((64, 48, 32), [0.05, 0.2]),
        ((9, 9, 9), [0.8]),
        ((1, 1, 1), [1.0]),
    ]
    for shape, dens in spec:
        for p in dens:
            seed += 1
            name = "rand_{}_p{:03d}".format("x".join(map(str, shape)), int(round(p * 100)))
            cases.append((name, random_mask(shape, p, seed)))
    cases.append(("blobs_64x48x32", blob_mask((64, 48, 32), 10, 2.0, 7.0, 2001)))
    cases.append(("blobs_40x40x24", blob_mask((40, 40, 24), 25, 1.0, 3.5, 2002)))
    cases.append(("blobs_31x17x13", blob_mask((31, 17, 13), 8, 1.5, 5.0, 2003)))
    cases.append(("checker_7x8x9", checkerboard((7, 8, 9))))
    return cases


def first_voxel_order(labels):
    """Labels sorted by the Fortran-order index of their first voxel."""
    flat = np.asarray(labels).ravel(order="F")
    vals, first = np.unique(flat, return_index=True)
    keep = vals != 0
    vals, first = vals[keep], first[keep]
    return vals[np.argsort(first, kind="stable")]


def canonical(labels):
    """Relabel so ids follow first-voxel Fortran order (for partition comparison)."""
    order = first_voxel_order(labels)
    lut = np.zeros(int(labels.max()) + 1 if labels.size else 1, dtype=np.int64)
    lut[order] = np.arange(1, len(order) + 1)
    return lut[labels]


def label_one(mask, conn):
    lab = cc3d.connected_components(np.asfortranarray(mask.astype(np.uint8)),
                                    connectivity=conn, out_dtype=np.uint32)
    assert lab.dtype == np.uint32 and lab.shape == mask.shape
    n = int(lab.max())
    # Numbering convention: exactly 1..N, ordered by first voxel in Fortran (i-fastest) order.
    order = first_voxel_order(lab)
    assert len(order) == n, f"labels not contiguous 1..{n}"
    assert np.array_equal(order, np.arange(1, n + 1)), \
        f"cc3d numbering is not first-voxel Fortran order: {order[:20]}"
    # Same partition as scipy.ndimage.label with the matching structure.
    st = ndimage.generate_binary_structure(3, SCIPY_RANK[conn])
    sl, sn = ndimage.label(mask, structure=st)
    assert sn == n, (sn, n)
    assert np.array_equal(canonical(sl), lab.astype(np.int64)), "partition differs from scipy"
    sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    assert (sizes > 0).all()
    return lab, n, [int(s) for s in sizes]


def main():
    (OUT / "inputs").mkdir(parents=True, exist_ok=True)
    (OUT / "labels").mkdir(parents=True, exist_ok=True)
    eye = np.eye(4)
    todo = []
    for name, mask in synthetic_inputs():
        rel = f"inputs/{name}.nii.gz"
        save_nifti(OUT / rel, mask.astype(np.uint8), eye)
        todo.append((name, rel, mask, eye, None))
    for f in sorted(SCT.glob("*.nii.gz")):
        img = nib.load(str(f))
        mask = (np.asanyarray(img.dataobj) != 0).astype(np.uint8)
        name = "sct_" + f.name[: -len(".nii.gz")]
        todo.append((name, f"../sct/{f.name}", mask, img.affine, img.header))

    cases = []
    for name, rel, mask, affine, header in todo:
        assert mask.ndim == 3
        entry = {"name": name, "input": rel, "shape": [int(s) for s in mask.shape],
                 "foreground": int(mask.sum()), "labels": {}, "count": {}, "sizes": {}}
        for c in CONNS:
            lab, n, sizes = label_one(mask, c)
            lrel = f"labels/{name}_c{c}.nii.gz"
            save_nifti(OUT / lrel, lab, affine, like=header)
            entry["labels"][str(c)] = lrel
            entry["count"][str(c)] = n
            entry["sizes"][str(c)] = sizes
        cases.append(entry)
        print(f"{name:40s} shape={entry['shape']} fg={entry['foreground']} counts={entry['count']}")

    manifest = {
        "tool": "connected-components-3d 4.1.1",
        "numpy": np.__version__,
        "scipy": __import__("scipy").__version__,
        "nibabel": nib.__version__,
        "made_by": "scripts/make_ccl_fixtures.py",
        "convention": ("labels 1..N numbered by first voxel in Fortran order (axis 0 = NIfTI i fastest); "
                       "input foreground = value != 0; sizes[k] = voxel count of label k+1"),
        "cases": cases,
    }
    (OUT / "manifest.json").write_text(dump_json(manifest))
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
