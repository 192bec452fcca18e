#!/usr/bin/env python3
"""Probability maps for the synthetic example dataset (candidates, FROC / PR curves).

Reads the masks written by scripts/make_example_data.py and writes
examples/data/{dice_loss,focal_loss,tversky_loss}_prob/ms_001..ms_008.nii.gz: float32
maps in [0, 1] with the masks' shape (96x96x48) and affine, such that

    p >= 0.5  exactly where the model's mask is 1   (asserted before writing)

so thresholding a map at 0.5 gives back that model's mask, voxel for voxel. On top of
the mask the maps carry what a binary mask cannot, so FROC / PR curves have something
to show and the three models differ:

  - each predicted lesion (26-connected component of the mask) is a smooth bump that
    rises from ~0.5 at its border (Euclidean distance transform, 1x1x3 mm spacing) to a
    peak, its "confidence" (3 decimals, so it is the component's exact float32 maximum):
    uniform in [0.70, 0.99] for components that overlap a GT lesion, [0.50, 0.80] for
    false positives (focal_loss has many of those, so its curve bends early);
  - outside the mask: a gaussian-blurred halo of those bumps, capped at 0.30, and a few
    sub-threshold "near miss" blobs per case (peaks in [0.10, 0.45]): on some GT lesions
    that the mask misses (probability 0.6 each: lower thresholds recover them) and a
    few elsewhere (false positives at lower thresholds; focal_loss gets the most);
  - everything else is exactly 0, and all values are rounded to 3 decimals, which keeps
    the gzip'd files small.

Everything comes from SEED (one numpy Generator per case and model), and the .nii.gz
files are written with gzip mtime 0, so two runs give byte-identical files. A summary
per model (components, confidences, near misses, bytes written) is printed at the end.

Usage: python3 scripts/make_example_probs.py   (bootstraps .venv-scripts on first run;
run scripts/make_example_data.py first if the masks are missing)
"""
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _venv  # noqa: E402

_venv.ensure()

import shutil  # noqa: E402

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from _fixio import save_nifti  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "examples" / "data"
SEED = 20240517          # same as make_example_data.py; streams here use a 4th key
STREAM = 7               # default_rng([SEED, case, model + 1, STREAM])
SHAPE = (96, 96, 48)
AFFINE = np.array([[1.0, 0.0, 0.0, -48.0],
                   [0.0, 1.0, 0.0, -48.0],
                   [0.0, 0.0, 3.0, -72.0],
                   [0.0, 0.0, 0.0, 1.0]])
SPACING = (1.0, 1.0, 3.0)   # mm
N_CASES = 8
MODELS = ("dice_loss", "focal_loss", "tversky_loss")

TP_CONF = (0.70, 0.99)      # peak of a predicted component that overlaps a GT lesion
FP_CONF = (0.50, 0.80)      # peak of a false-positive component
NEAR_PEAK = (0.10, 0.45)    # peak of a sub-threshold near-miss blob
P_MISSED_BLOB = 0.6         # chance that a missed GT lesion gets a near-miss blob
ELSEWHERE = {"dice_loss": (1, 2), "focal_loss": (2, 4), "tversky_loss": (1, 3)}  # per case
HALO_MAX = 0.30             # cap of the blurred background outside the mask
HALO_SIGMA = (1.2, 1.2, 0.4)  # voxels (~1.2 mm in every direction)
ZERO_BELOW = 0.01           # values below this become exactly 0
INSIDE_MIN = np.float32(0.5)
OUTSIDE_MAX = np.float32(0.49)

S26 = np.ones((3, 3, 3), dtype=bool)
GRID = np.indices(SHAPE, dtype=np.float32)
CENTRE = (np.array(SHAPE, dtype=np.float32) - 1) / 2
# the same "white matter" ellipsoid as make_example_data.py: where blob centres may lie
WM = (((GRID[0] - CENTRE[0]) / 32) ** 2 + ((GRID[1] - CENTRE[1]) / 36) ** 2
      + ((GRID[2] - CENTRE[2]) / 15) ** 2) <= 1
WM_IDX = np.argwhere(WM)


def load_mask(path):
    img = nib.load(str(path))
    assert img.shape == SHAPE, (path, img.shape)
    assert np.allclose(img.affine, AFFINE), (path, img.affine)
    return np.asarray(img.dataobj) > 0


def bump(region, peak, floor):
    """Smooth bump over `region` (one component): `floor`-ish at the border, `peak` at
    the voxel(s) farthest from the background (mm distance transform)."""
    d = ndimage.distance_transform_edt(region, sampling=SPACING)
    t = d[region] / d[region].max()
    out = np.zeros(SHAPE)
    out[region] = floor + (peak - floor) * np.sin(0.5 * np.pi * t)
    return out


def halo(values):
    """Gaussian-blurred copy of `values`, capped at HALO_MAX."""
    return np.minimum(ndimage.gaussian_filter(values, HALO_SIGMA), HALO_MAX)


def elsewhere_blob(rng, taken):
    """A round gaussian blob (peak in NEAR_PEAK) whose support keeps clear of `taken`."""
    keep_out = ndimage.binary_dilation(taken, S26, iterations=2)
    for _attempt in range(1000):
        c = WM_IDX[rng.integers(len(WM_IDX))] + rng.uniform(-0.5, 0.5, 3)
        peak = round(float(rng.uniform(*NEAR_PEAK)), 3)
        s = rng.uniform(1.0, 2.0)  # mm
        r2 = sum(((GRID[a] - c[a]) * SPACING[a]) ** 2 for a in range(3))
        b = peak * np.exp(-r2 / (2 * s * s))
        b[b < ZERO_BELOW] = 0.0
        if (b > 0).any() and not (keep_out & (b > 0)).any():
            return b, peak
    raise RuntimeError("no room for a near-miss blob")


def prob_map(rng, model, gt, mask):
    """One model's probability map (float64, before rounding) and its statistics."""
    lp, n_pred = ndimage.label(mask, S26)
    inside = np.zeros(SHAPE)
    confs, tp_flags = [], []
    for i in range(1, n_pred + 1):
        comp = lp == i
        tp = bool((comp & gt).any())
        conf = round(float(rng.uniform(*(TP_CONF if tp else FP_CONF))), 3)
        inside = np.maximum(inside, bump(comp, conf, 0.5))
        confs.append(conf)
        tp_flags.append(tp)
    outside = halo(inside)

    # near misses on GT lesions the mask does not touch
    lg, n_gt = ndimage.label(gt, S26)
    near_missed, near_peaks = 0, []
    n_missed = 0
    for j in range(1, n_gt + 1):
        les = lg == j
        if (les & mask).any():
            continue
        n_missed += 1
        if rng.random() >= P_MISSED_BLOB:
            continue
        peak = round(float(rng.uniform(*NEAR_PEAK)), 3)
        b = bump(les, peak, 0.6 * peak)
        outside = np.maximum(outside, np.maximum(b, halo(b)))
        near_missed += 1
        near_peaks.append(peak)

    # near misses elsewhere (low-threshold false positives)
    taken = mask | gt
    lo, hi = ELSEWHERE[model]
    n_else = int(rng.integers(lo, hi + 1))
    for _ in range(n_else):
        b, peak = elsewhere_blob(rng, taken)
        outside = np.maximum(outside, b)
        taken = taken | (b > 0)
        near_peaks.append(peak)

    p = np.where(mask, inside, outside)
    stats = dict(pred=n_pred, confs=confs, tp=tp_flags, gt=n_gt, missed=n_missed,
                 near_missed=near_missed, near_else=n_else, near_peaks=near_peaks)
    return p, stats


def finish(p, mask):
    """Rounds to 3 decimals, zeroes the tail, casts to float32 and enforces the 0.5 rule."""
    p = np.round(np.clip(p, 0.0, 1.0), 3)
    p[p < ZERO_BELOW] = 0.0
    p = p.astype(np.float32)
    p[mask] = np.maximum(p[mask], INSIDE_MIN)
    p[~mask] = np.minimum(p[~mask], OUTSIDE_MAX)
    assert p.dtype == np.float32 and p.shape == SHAPE
    assert np.isfinite(p).all() and p.min() >= 0.0 and p.max() <= 1.0
    assert np.array_equal(p >= np.float32(0.5), mask), "threshold 0.5 must give the mask"
    return p


def main():
    for model in MODELS:
        if (DATA / f"{model}_prob").exists():
            shutil.rmtree(DATA / f"{model}_prob")
    tot = {m: dict(pred=0, confs=[], tp=[], gt=0, missed=0, near_missed=0, near_else=0,
                   nonzero=0, bytes=0) for m in MODELS}
    for case in range(1, N_CASES + 1):
        name = f"ms_{case:03d}.nii.gz"
        gt = load_mask(DATA / "labelsTs" / name)
        for k, model in enumerate(MODELS):
            mask = load_mask(DATA / model / name)
            rng = np.random.default_rng([SEED, case, k + 1, STREAM])
            p, st = prob_map(rng, model, gt, mask)
            p = finish(p, mask)
            out = DATA / f"{model}_prob" / name
            save_nifti(out, p, AFFINE)
            # read back: what lesioneval will see
            q = np.asarray(nib.load(str(out)).dataobj)
            assert q.dtype == np.float32 and np.array_equal(q, p)
            assert np.array_equal(q >= np.float32(0.5), mask)
            t = tot[model]
            t["pred"] += st["pred"]; t["confs"] += st["confs"]; t["tp"] += st["tp"]
            t["gt"] += st["gt"]; t["missed"] += st["missed"]
            t["near_missed"] += st["near_missed"]; t["near_else"] += st["near_else"]
            t["nonzero"] += int((p > 0).sum())
            t["bytes"] += out.stat().st_size

    print("comps: predicted components (26-connected, = candidates at threshold 0.5); hit/fp:\n"
          "those overlapping a GT lesion / not; conf: their peaks; near miss: sub-threshold\n"
          "blobs on missed GT lesions / elsewhere\n")
    print(f"{'model':<13} {'comps':>5} {'hit/fp':>7} {'conf>=0.5':>9} {'conf>=0.8':>9} "
          f"{'mean hit/fp conf':>16} {'missed GT':>9} {'near miss: missed/else':>22} "
          f"{'nonzero vox':>11} {'bytes':>8}")
    total = 0
    for model, t in tot.items():
        c, tp = np.array(t["confs"]), np.array(t["tp"], dtype=bool)
        print(f"{model:<13} {t['pred']:>5} {int(tp.sum()):>3}/{int((~tp).sum()):<3} "
              f"{int((c >= 0.5).sum()):>9} {int((c >= 0.8).sum()):>9} "
              f"{c[tp].mean():>8.3f}/{c[~tp].mean():<7.3f} {t['missed']:>9} "
              f"{t['near_missed']:>13}/{t['near_else']:<8} {t['nonzero']:>11} {t['bytes']:>8}")
        total += t["bytes"]
    print(f"\n{len(MODELS) * N_CASES} files, {total} bytes in all")


if __name__ == "__main__":
    main()
