#!/usr/bin/env python3
"""Reference BraTS 2023 lesion-wise numbers, with HD95 from DeepMind's surface-distance package.

Writes fixtures/brats/:
  cases/{gt,pred}/<case>.nii.gz   seeded BraTS-like label maps (labels 1, 2, 3), anisotropic spacings
  surfel_areas.json               DeepMind's surfel area table (256 codes) at several spacings
  expected.json                   per case and region (WT, TC, ET): Num_TP / Num_FN / Num_FP,
                                  lesion-wise Dice and HD95, and every kept GT lesion's Dice and HD95

Why: lesioneval's `brats2023` preset measures HD95 on DeepMind's area-weighted surfels
(src/metrics/surfels.rs derives the area table itself). This pins both the table and the whole
lesion-wise computation to the code BraTS runs, so `cargo test` (tests/brats_surfels.rs) checks them
without Python.

What runs what:
- Surface distances and HD95: `surface_distance.compute_surface_distances` and
  `compute_robust_hausdorff(…, 95)` from PyPI `surface-distance` 0.1 (DeepMind). BraTS-2023-Metrics
  vendors the same module (brats_2023_metrics/surface_distance/metrics.py @ 0c603fc; its 3-D path and
  normals table are identical, checked line by line); BraTS passes 0/1 integer masks to it, the PyPI
  copy wants booleans, which give the same result.
- The lesion-wise loop is our transcription of `get_lesion_wise_score` in
  brats_2023_metrics/surface_distance/brats_metrics.py @ 5db2741 (the package is not on PyPI; its rules
  are quoted in docs/presets-research.md §3): cc3d 26-connectivity, GT lesions merged through the
  26-components of the 3-fold 18-connected dilation, a prediction component hits a merged lesion when it
  meets that lesion's own dilation, Dice and HD95 against the union of the hitting components, inf → 374,
  GT lesions kept when volume (voxels × zooms of the prediction) > 50 mm³, FP = components hitting no
  dilated GT lesion, averages over kept lesions + FPs, NaN (0/0) → Dice 1, HD95 0.
- The environment is BraTS-2023-Metrics' own pins (numpy 1.24.3, scipy 1.11.4, cc3d 3.12.1,
  nibabel 5.1.0), in its own venv .venv-brats (scripts/requirements-brats.txt).

Run: python3 scripts/crosscheck_brats.py      (deterministic: two runs give identical files)
"""
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _venv  # noqa: E402

_venv.ensure(venv=".venv-brats", requirements="requirements-brats.txt")

from importlib.metadata import version as pkg_version  # noqa: E402

import cc3d  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import surface_distance  # noqa: E402
from scipy import ndimage  # noqa: E402
from surface_distance import lookup_tables  # noqa: E402

from _fixio import dump_stable, num, save_nifti  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "brats"
REGIONS = [("WT", [1, 2, 3]), ("TC", [1, 3]), ("ET", [3])]
DILATION = 3
THRESH_MM3 = 50.0
MISS = 374.0
TABLE_SPACINGS = [(1.0, 1.0, 1.0), (0.9375, 0.9375, 3.0), (0.5, 0.8, 1.5), (0.7, 1.3, 2.9), (2.0, 0.25, 1.1)]


# --------------------------------------------------------------------------- cases
def ellipsoid(shape, centre, radii):
    g = np.indices(shape, dtype=np.float64)
    return sum(((g[k] - centre[k]) / radii[k]) ** 2 for k in range(3)) <= 1.0


def tumour(shape, centre, radii):
    """Edema (2) around a core: necrosis (1) inside an enhancing rim (3)."""
    lab = np.zeros(shape, np.uint8)
    lab[ellipsoid(shape, centre, radii)] = 2
    lab[ellipsoid(shape, centre, [r * 0.65 for r in radii])] = 3
    lab[ellipsoid(shape, centre, [r * 0.35 for r in radii])] = 1
    return lab


def noisy_labels(rng, shape, sigma, cuts):
    """Irregular lesions: a smoothed random field cut into bands (cuts for labels 2, 3, 1)."""
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    f /= f.std()
    lab = np.zeros(shape, np.uint8)
    lab[f > cuts[0]] = 2
    lab[f > cuts[1]] = 3
    lab[f > cuts[2]] = 1
    return lab, f


def make_cases():
    rng = np.random.default_rng(20231127)
    cases = {}
    s = (40, 36, 18)
    # One tumour, prediction shifted and a little smaller.
    cases["shifted"] = ((0.9375, 0.9375, 3.0), tumour(s, (18, 17, 8), (9, 8, 4)), tumour(s, (19.5, 16, 8.6), (8, 8, 3.5)))
    # Two tumours; the prediction misses the small one and adds a far FP blob.
    g = np.maximum(tumour(s, (10, 10, 8), (6, 6, 3)), tumour(s, (30, 26, 9), (3, 3, 2)))
    p = np.maximum(tumour(s, (10.5, 10, 8), (6, 5, 3)), tumour(s, (32, 6, 12), (3, 3, 2)))
    cases["missed_and_fp"] = ((1.0, 1.0, 1.5), g, p)
    # Two GT lesions 4 voxels apart merge through their dilations; the prediction covers one.
    g = np.zeros(s, np.uint8)
    g[6:14, 8:16, 5:12] = 2
    g[18:26, 8:16, 5:12] = 2
    g[8:12, 10:14, 6:11] = 3
    p = np.zeros(s, np.uint8)
    p[7:14, 8:15, 5:11] = 2
    p[8:12, 10:14, 6:10] = 3
    cases["merged_by_dilation"] = ((1.0, 1.0, 1.0), g, p)
    # One lesion split into two predictions; a tiny GT lesion (under 50 mm3) with a prediction on it.
    g = tumour(s, (16, 18, 9), (10, 7, 4))
    g[34:36, 30:33, 2:4] = 2
    p = np.zeros(s, np.uint8)
    p[6:14, 11:25, 5:13] = 2
    p[18:26, 11:25, 5:13] = 3
    p[34:36, 30:32, 2:4] = 2
    cases["split_and_small"] = ((1.0, 1.0, 1.0), g, p)
    # Empty prediction, empty GT, both empty.
    cases["empty_pred"] = ((1.0, 1.0, 2.0), tumour(s, (20, 18, 9), (7, 6, 3)), np.zeros(s, np.uint8))
    cases["empty_gt"] = ((1.0, 1.0, 2.0), np.zeros(s, np.uint8), tumour(s, (20, 18, 9), (5, 5, 3)))
    cases["both_empty"] = ((1.0, 1.0, 1.0), np.zeros(s, np.uint8), np.zeros(s, np.uint8))
    # Irregular, thin and fragmented lesions: every neighbourhood code, many lesions per case.
    for i, (sp, sigma, shape) in enumerate(
        [((1.0, 1.0, 1.0), 1.6, (64, 60, 40)), ((0.5, 0.8, 1.5), 1.3, (72, 56, 32)), ((0.7, 1.3, 2.9), 2.0, (64, 60, 20))]
    ):
        g, f = noisy_labels(rng, shape, sigma, (2.0, 2.4, 2.9))
        noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
        f2 = 0.9 * f + 0.45 * noise / noise.std()
        f2 /= f2.std()
        p = np.zeros(shape, np.uint8)
        p[f2 > 1.95] = 2
        p[f2 > 2.4] = 3
        p[f2 > 2.95] = 1
        cases[f"irregular_{i}"] = (sp, g, p)
    # One-voxel-thin structures (sheets and lines), where surfels and surface voxels differ most.
    g = np.zeros(s, np.uint8)
    g[5:30, 5:30, 9] = 2
    g[10:20, 12, 3:15] = 3
    p = np.zeros(s, np.uint8)
    p[6:31, 5:29, 10] = 2
    p[10:21, 13, 3:14] = 3
    cases["thin"] = ((1.0, 0.8, 2.5), g, p)
    return cases


# --------------------------------------------------------------------------- BraTS lesion-wise loop
STRUCT18 = ndimage.generate_binary_structure(3, 2)


def dice(a, b):
    s = a.sum() + b.sum()
    return 2.0 * np.logical_and(a, b).sum() / s if s > 0 else np.nan


def lesion_wise(gt_lab, pred_lab, labels, spacing):
    gt = np.isin(gt_lab, labels)
    pred = np.isin(pred_lab, labels)
    sx, sy, sz = spacing
    pred_cc = cc3d.connected_components(pred.astype(np.uint8), connectivity=26)
    dil_cc = cc3d.connected_components(
        ndimage.binary_dilation(gt, structure=STRUCT18, iterations=DILATION).astype(np.uint8), connectivity=26
    )
    merged = dil_cc * gt  # each GT voxel takes its dilated component's id
    lesions, tp = [], []
    for comp in np.unique(merged[merged != 0]):
        gt_tmp = merged == comp
        gt_dil = ndimage.binary_dilation(gt_tmp, structure=STRUCT18, iterations=DILATION)
        hits = np.unique(pred_cc * gt_dil)
        hits = hits[hits != 0]
        tp.extend(int(h) for h in hits)
        pred_tmp = np.isin(pred_cc, hits)
        d = dice(pred_tmp, gt_tmp)
        sd = surface_distance.compute_surface_distances(gt_tmp, pred_tmp, (sx, sy, sz))
        hd = surface_distance.compute_robust_hausdorff(sd, 95)
        vol = gt_tmp.sum() * sx * sy * sz
        first = int(np.flatnonzero(gt_tmp.ravel(order="F"))[0])  # lesioneval numbers lesions by first voxel
        lesions.append(
            {
                "first_voxel": [first % gt.shape[0], first // gt.shape[0] % gt.shape[1], first // (gt.shape[0] * gt.shape[1])],
                "voxels": int(gt_tmp.sum()),
                "volume_mm3": float(vol),
                "detected": bool(len(hits) > 0),
                "dice": 0.0 if np.isnan(d) else float(d),
                "hd95": MISS if np.isinf(hd) else float(hd),
            }
        )
    fp = sorted(set(np.unique(pred_cc[pred_cc != 0]).tolist()) - set(tp))
    kept = [l for l in lesions if l["volume_mm3"] > THRESH_MM3]
    denom = len(kept) + len(fp)
    if denom == 0:
        lw_dice, lw_hd = 1.0, 0.0
    else:
        lw_dice = sum(l["dice"] for l in kept) / denom
        lw_hd = (sum(l["hd95"] for l in kept) + MISS * len(fp)) / denom
    return {
        "num_tp": sum(l["detected"] for l in kept),
        "num_fn": sum(not l["detected"] for l in kept),
        "num_fp": len(fp),
        "lesion_wise_dice": lw_dice,
        "lesion_wise_hd95": lw_hd,
        "kept_lesions": [{k: num(v) if not isinstance(v, list) else v for k, v in l.items()} for l in kept],
    }


def main():
    cases = make_cases()
    doc = {
        "versions": {p: pkg_version(p) for p in ["surface-distance", "numpy", "scipy", "connected-components-3d", "nibabel"]},
        "dilation": DILATION,
        "threshold_mm3": THRESH_MM3,
        "cases": {},
    }
    for name, (sp, g, p) in sorted(cases.items()):
        aff = np.diag([sp[0], sp[1], sp[2], 1.0])
        save_nifti(OUT / "cases" / "gt" / f"{name}.nii.gz", g, aff)
        save_nifti(OUT / "cases" / "pred" / f"{name}.nii.gz", p, aff)
        # Read back as BraTS does: spacing from the prediction header, data from get_fdata().
        pn = nib.load(OUT / "cases" / "pred" / f"{name}.nii.gz")
        gn = nib.load(OUT / "cases" / "gt" / f"{name}.nii.gz")
        zooms = tuple(float(z) for z in pn.header.get_zooms())
        gl, pl = gn.get_fdata().astype(np.uint8), pn.get_fdata().astype(np.uint8)
        doc["cases"][name] = {
            "spacing": list(zooms),
            "regions": {r: {k: num(v) if not isinstance(v, list) else v for k, v in lesion_wise(gl, pl, labels, zooms).items()} for r, labels in REGIONS},
        }
        print(name, {r: (v["num_tp"], v["num_fn"], v["num_fp"], round(v["lesion_wise_hd95"], 3)) for r, v in doc["cases"][name]["regions"].items()})
    (OUT / "expected.json").write_text(dump_stable(doc, sort_keys=True))
    tables = [
        {"spacing": list(sp), "areas": [num(a) for a in lookup_tables.create_table_neighbour_code_to_surface_area(sp)]}
        for sp in TABLE_SPACINGS
    ]
    (OUT / "surfel_areas.json").write_text(dump_stable({"version": pkg_version("surface-distance"), "tables": tables}))


if __name__ == "__main__":
    main()
