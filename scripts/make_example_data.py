#!/usr/bin/env python3
"""Synthetic MS-like example dataset for the README's first command.

Writes examples/data/{labelsTs,dice_loss,focal_loss,tversky_loss}/ms_001..ms_008.nii.gz:
uint8 binary masks of shape 96x96x48, spacing 1x1x3 mm (affine diag(1,1,3) with origin
(-48,-48,-72)).  labelsTs is the ground truth; the three "models" are derived from it
with different, seeded failure modes, so that their voxel Dice is similar while their
lesion counts (FP above all) differ a lot:

  dice_loss     boundaries slightly dilated/eroded, misses most tiny lesions, few FPs;
  focal_loss    finds more small lesions but adds many small FP blobs (1-10 voxels)
                and splits two lesions in two;
  tversky_loss  high recall, dilated boundaries, merges nearby lesions, some FPs.

Everything comes from SEED (one numpy Generator per case, and per case and model), and
the .nii.gz files are written with gzip mtime 0, so two runs give byte-identical files.
After writing, a summary (lesions = 26-connected components, IoU >= 0.1 one-to-one
matches, voxel Dice) is printed for sanity-checking lesioneval's output.

Usage: python3 scripts/make_example_data.py   (bootstraps .venv-scripts on first run)
"""
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _venv  # noqa: E402

_venv.ensure()

import shutil  # noqa: E402

import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402

from _fixio import save_nifti  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "examples" / "data"
SEED = 20240517
SHAPE = (96, 96, 48)
AFFINE = np.array([[1.0, 0.0, 0.0, -48.0],
                   [0.0, 1.0, 0.0, -48.0],
                   [0.0, 0.0, 3.0, -72.0],
                   [0.0, 0.0, 0.0, 1.0]])
N_CASES = 8
EMPTY_CASE = 6           # ms_006 has no lesions
SPLIT_CASES = (2, 5)     # focal_loss splits the largest lesion of these cases
SATELLITE_CASES = (1, 3, 4, 7)  # one satellite lesion each (tversky_loss merges it)
MODELS = ("dice_loss", "focal_loss", "tversky_loss")

S26 = np.ones((3, 3, 3), dtype=bool)
CROSS2D = np.zeros((3, 3, 3), dtype=bool)  # in-plane 4-neighbourhood (slices are thick)
CROSS2D[1, :, 1] = CROSS2D[:, 1, 1] = True
SQUARE2D = np.zeros((3, 3, 3), dtype=bool)  # in-plane 8-neighbourhood
SQUARE2D[:, :, 1] = True
STEPS6 = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]])

GRID = np.indices(SHAPE, dtype=np.float32)
CENTRE = (np.array(SHAPE, dtype=np.float32) - 1) / 2
# "white matter": where lesion centres may lie; "brain": where any voxel may lie.
WM = (((GRID[0] - CENTRE[0]) / 32) ** 2 + ((GRID[1] - CENTRE[1]) / 36) ** 2
      + ((GRID[2] - CENTRE[2]) / 15) ** 2) <= 1
BRAIN = (((GRID[0] - CENTRE[0]) / 42) ** 2 + ((GRID[1] - CENTRE[1]) / 45) ** 2
         + ((GRID[2] - CENTRE[2]) / 21) ** 2) <= 1
WM_IDX = np.argwhere(WM)


# --------------------------------------------------------------------------- shapes
def ellipsoid(c, r, theta):
    """Ellipsoid with centre c, semi-axes r (voxels), rotated by theta in-plane."""
    dx, dy, dz = GRID[0] - c[0], GRID[1] - c[1], GRID[2] - c[2]
    ct, st = np.cos(theta), np.sin(theta)
    u, v = ct * dx + st * dy, -st * dx + ct * dy
    return (u / r[0]) ** 2 + (v / r[1]) ** 2 + (dz / r[2]) ** 2 <= 1


def blob(rng, start, n):
    """n voxels grown from start by random face steps (mostly in-plane)."""
    vox = [tuple(int(x) for x in start)]
    while len(vox) < n:
        base = np.array(vox[rng.integers(len(vox))])
        step = STEPS6[rng.choice(6, p=[0.22, 0.22, 0.22, 0.22, 0.06, 0.06])]
        q = tuple(int(x) for x in np.clip(base + step, 0, np.array(SHAPE) - 1))
        if q not in vox:
            vox.append(q)
    m = np.zeros(SHAPE, dtype=bool)
    m[tuple(np.array(vox).T)] = True
    return m


def random_centre(rng, jitter=True):
    c = WM_IDX[rng.integers(len(WM_IDX))].astype(float)
    if jitter:
        c += rng.uniform(-0.5, 0.5, 3)
    return c


def lesion_shape(rng, kind, c):
    theta = rng.uniform(0, np.pi)
    if kind == "tiny":
        return blob(rng, np.round(c), int(rng.integers(2, 7)))
    if kind == "ellipsoid":
        r = (rng.uniform(1.0, 6.0), rng.uniform(1.0, 6.0), rng.uniform(0.6, 2.0))
        return ellipsoid(c, r, theta)
    # irregular: union of 2-3 overlapping ellipsoids
    m = np.zeros(SHAPE, dtype=bool)
    for _ in range(int(rng.integers(2, 4))):
        off = np.array([rng.uniform(-3, 3), rng.uniform(-3, 3), rng.uniform(-0.7, 0.7)])
        r = (rng.uniform(1.5, 4.5), rng.uniform(1.5, 4.5), rng.uniform(0.6, 1.8))
        m |= ellipsoid(c + off, r, rng.uniform(0, np.pi))
    return m


def make_gt(rng, n_lesions, n_satellites):
    """Label map (1..n) of lesions and their kinds.

    Lesions are at least 3 voxels apart, except `n_satellites` lesions placed with
    a 1-voxel in-plane gap to an earlier one (confluent-looking pairs that a
    dilating model merges).
    """
    lab = np.zeros(SHAPE, dtype=np.int32)
    kinds = []
    n_sat = 0
    while len(kinds) < n_lesions:
        kind = str(rng.choice(["ellipsoid", "irregular", "tiny"], p=[0.55, 0.3, 0.15]))
        satellite = kind != "tiny" and len(kinds) >= 2 and n_sat < n_satellites
        for _attempt in range(300):
            if satellite:
                host = int(rng.integers(1, len(kinds) + 1))
                hc = np.array(ndimage.center_of_mass(lab == host))
                ang = rng.uniform(0, 2 * np.pi)
                d = rng.uniform(4, 9)
                c = hc + np.array([d * np.cos(ang), d * np.sin(ang), rng.uniform(-0.5, 0.5)])
            else:
                c = random_centre(rng)
            m = lesion_shape(rng, kind, c)
            n = int(m.sum())
            if n < 2 or not (m <= BRAIN).all() or (kind != "tiny" and n < 7):
                continue
            if satellite:
                if (m & ndimage.binary_dilation(lab > 0, S26)).any():
                    continue  # touches a lesion
                near = ndimage.binary_dilation(lab == host, SQUARE2D, iterations=2)
                far = ndimage.binary_dilation(lab * (lab != host) > 0, S26, iterations=3)
                if not (m & near).any() or (m & far).any():
                    continue  # 1-voxel gap to the host, well clear of the others
            elif (m & ndimage.binary_dilation(lab > 0, S26, iterations=3)).any():
                continue  # closer than 3 voxels to an existing lesion
            lab[m] = len(kinds) + 1
            kinds.append("satellite" if satellite else kind)
            n_sat += satellite
            break
    return lab, kinds


# --------------------------------------------------------------------------- models
def largest_cc(m):
    lab, n = ndimage.label(m, S26)
    if n <= 1:
        return m
    sizes = np.bincount(lab.ravel())[1:]
    return lab == (1 + int(np.argmax(sizes)))


def grow(rng, m, frac, struct=CROSS2D):
    """Adds a random fraction of the in-plane outer shell (within the brain)."""
    shell = ndimage.binary_dilation(m, struct) & ~m & BRAIN
    return m | (shell & (rng.random(SHAPE) < frac))


def shrink(rng, m, frac):
    """Removes a random fraction of the in-plane inner shell; keeps >= 50 % and one piece."""
    shell = m & ~ndimage.binary_erosion(m, CROSS2D, border_value=1)
    out = largest_cc(m & ~(shell & (rng.random(SHAPE) < frac)))
    return out if out.sum() * 2 >= m.sum() else m


def size_class(n):
    return "tiny" if n <= 6 else "small" if n <= 30 else "large"


def split(m):
    """Cuts m in two by clearing a 1-voxel plane across its longest in-plane axis."""
    pts = np.argwhere(m).astype(float)
    c = pts.mean(0)
    cov = np.cov((pts[:, :2] - c[:2]).T)
    axis = np.linalg.eigh(cov)[1][:, -1]
    t = (GRID[0] - c[0]) * axis[0] + (GRID[1] - c[1]) * axis[1]
    out = m & (np.abs(t) > 0.9)
    lab, n = ndimage.label(out, S26)
    assert n >= 2, "split failed"
    sizes = np.bincount(lab.ravel())[1:]
    keep = 1 + np.argsort(sizes)[-2:]
    return np.isin(lab, keep)


def add_fps(rng, pred, gt, count, size_lo, size_hi, ellipsoids=False):
    """Adds `count` FP components far from every lesion and from each other."""
    added = 0
    while added < count:
        taken = ndimage.binary_dilation(pred | gt, S26, iterations=2)
        c = random_centre(rng, jitter=False)
        if ellipsoids:
            m = ellipsoid(c, (rng.uniform(1.2, 2.8), rng.uniform(1.2, 2.8), rng.uniform(0.6, 1.2)),
                          rng.uniform(0, np.pi))
        else:
            m = blob(rng, c, int(rng.integers(size_lo, size_hi + 1)))
        if m.sum() < size_lo or (m & taken).any() or not (m <= BRAIN).all():
            continue
        pred |= m
        added += 1
    return pred


def model_prediction(model, rng, lab, case, hardness):
    """One model's mask; lesion i is detected iff hardness[i] < the model's p_detect
    for its size class (shared hardness: what dice_loss finds, the others find too)."""
    gt = lab > 0
    pred = np.zeros(SHAPE, dtype=bool)
    n = int(lab.max())
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    split_id = int(np.argmax(sizes[1:])) + 1 if (n and case in SPLIT_CASES) else 0
    for i in range(1, n + 1):
        les = lab == i
        cls = size_class(int(sizes[i]))
        if model == "dice_loss":
            p_det = {"tiny": 0.1, "small": 0.75, "large": 0.97}[cls]
            if hardness[i] >= p_det:
                continue
            op = rng.choice(["grow", "keep", "shrink"], p=[0.4, 0.25, 0.35])
            m = grow(rng, les, 0.5) if op == "grow" else shrink(rng, les, 0.4) if op == "shrink" else les
            # no merges: stay clear of every other lesion (GT and already predicted)
            if (m & ndimage.binary_dilation((gt & ~les) | pred, S26)).any():
                m = les
            pred |= m
        elif model == "focal_loss":
            p_det = {"tiny": 0.6, "small": 0.9, "large": 0.97}[cls]
            if i != split_id and hardness[i] >= p_det:
                continue
            op = rng.choice(["grow", "keep", "shrink"], p=[0.2, 0.4, 0.4])
            m = grow(rng, les, 0.4) if op == "grow" else shrink(rng, les, 0.5) if op == "shrink" else les
            if (m & ndimage.binary_dilation((gt & ~les) | pred, S26)).any():
                m = les
            if i == split_id:
                m = split(m)
            pred |= m
        else:  # tversky_loss: dilated, merges lesions that end up touching
            p_det = {"tiny": 0.95, "small": 1.0, "large": 1.0}[cls]
            if hardness[i] >= p_det:
                continue
            m = grow(rng, les, rng.uniform(0.4, 0.7))
            pred |= m
    if model == "tversky_loss":
        # in-plane closing bridges lesions 1-2 voxels apart (satellites) into one
        pred |= ndimage.binary_closing(pred, SQUARE2D) & BRAIN
    if model == "dice_loss":
        pred = add_fps(rng, pred, gt, int(rng.integers(0, 3)) or int(case == EMPTY_CASE), 8, 30,
                       ellipsoids=True)
    elif model == "focal_loss":
        pred = add_fps(rng, pred, gt, int(rng.integers(6, 15)), 1, 10)
    else:
        pred = add_fps(rng, pred, gt, int(rng.integers(2, 5)), 4, 20, ellipsoids=True)
    return pred


# --------------------------------------------------------------------------- summary
def match(gt, pred):
    lg, ng = ndimage.label(gt, S26)
    lp, npd = ndimage.label(pred, S26)
    tp = 0
    if ng and npd:
        inter = np.zeros((ng + 1, npd + 1), dtype=np.int64)
        np.add.at(inter, (lg.ravel(), lp.ravel()), 1)
        sg = np.bincount(lg.ravel(), minlength=ng + 1)[1:]
        sp = np.bincount(lp.ravel(), minlength=npd + 1)[1:]
        inter = inter[1:, 1:]
        union = sg[:, None] + sp[None, :] - inter
        w = np.where(10 * inter >= union, 1.0 + inter / union, 0.0)
        r, c = linear_sum_assignment(w, maximize=True)
        tp = int((w[r, c] > 0).sum())
    return ng, npd, tp


def main():
    for d in ["labelsTs", *MODELS]:
        if (OUT / d).exists():
            shutil.rmtree(OUT / d)
    tot = {m: dict(gt=0, pred=0, tp=0, inter=0, gv=0, pv=0, dice=[]) for m in MODELS}
    for case in range(1, N_CASES + 1):
        name = f"ms_{case:03d}.nii.gz"
        rng = np.random.default_rng([SEED, case])
        n_les = 0 if case == EMPTY_CASE else int(rng.integers(3, 16))
        lab, kinds = make_gt(rng, n_les, int(case in SATELLITE_CASES))
        gt = lab > 0
        save_nifti(OUT / "labelsTs" / name, gt.astype(np.uint8), AFFINE)
        hardness = np.random.default_rng([SEED, case, 0]).random(int(lab.max()) + 1)
        line = [f"{name}: {n_les:2d} GT lesions"]
        for k, model in enumerate(MODELS):
            mrng = np.random.default_rng([SEED, case, k + 1])
            pred = model_prediction(model, mrng, lab, case, hardness)
            save_nifti(OUT / model / name, pred.astype(np.uint8), AFFINE)
            ng, npd, tp = match(gt, pred)
            inter, gv, pv = int((gt & pred).sum()), int(gt.sum()), int(pred.sum())
            t = tot[model]
            t["gt"] += ng; t["pred"] += npd; t["tp"] += tp
            t["inter"] += inter; t["gv"] += gv; t["pv"] += pv
            t["dice"].append(1.0 if gv + pv == 0 else 2 * inter / (gv + pv))
            line.append(f"{model} pred {npd:2d} tp {tp:2d} dice {t['dice'][-1]:.3f}")
        print(" | ".join(line))
    print(f"\n{'model':<13} {'gt':>3} {'pred':>4} {'tp':>3} {'fp':>3} {'fn':>3} "
          f"{'dice(micro)':>11} {'dice(macro)':>11}")
    for model, t in tot.items():
        micro = 2 * t["inter"] / (t["gv"] + t["pv"])
        print(f"{model:<13} {t['gt']:>3} {t['pred']:>4} {t['tp']:>3} {t['pred'] - t['tp']:>3} "
              f"{t['gt'] - t['tp']:>3} {micro:>11.3f} {np.mean(t['dice']):>11.3f}")


if __name__ == "__main__":
    main()
