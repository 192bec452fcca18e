#!/usr/bin/env python3
"""Reference lesion candidates + FROC / PR / AUROC metrics for probability maps.

Writes (all deterministic: fixed seeds, gzip mtime 0, stable JSON):
  fixtures/froc/cases/gt/<case>.nii.gz     uint8 binary GT masks, identity affine
  fixtures/froc/cases/prob/<case>.nii.gz   float32 probability maps in [0, 1]
  fixtures/froc/candidates.json            report_guided_annotation 0.3.4 extract_lesion_candidates
                                           for threshold = dynamic, dynamic-v2, dynamic-fast, 0.5
  fixtures/froc/metrics.json               picai_eval 1.4.13 evaluate(...) on those detection maps
                                           (allow_unmatched...=True/False) + edge cases on bare y_lists

Every number is produced by the upstream packages; in addition the script carries an independent
re-implementation of the semantics written down in fixtures/froc/README.md (candidate extraction
incl. its float32 arithmetic, FROC counts, AP, AUROC) and asserts it reproduces upstream exactly
(candidates, counts) or within 1e-12 (AP / AUROC), so the README is checked, not just written.

Run: python3 scripts/crosscheck_froc.py   (bootstraps .venv-scripts from scripts/requirements.txt)
"""
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _venv  # noqa: E402

_venv.ensure()

import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
import warnings  # noqa: E402
from importlib.metadata import version as pkg_version  # noqa: E402

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

with contextlib.redirect_stdout(io.StringIO()):  # report_guided_annotation prints a banner on import
    from report_guided_annotation import extract_lesion_candidates  # noqa: E402
from picai_eval import evaluate  # noqa: E402
from picai_eval.metrics import Metrics  # noqa: E402

from _fixio import dump_stable, num, save_nifti  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "froc"
SHAPE = (32, 32, 16)
EYE = np.eye(4)
MODES = ["dynamic", "dynamic-v2", "dynamic-fast", 0.5]
METRIC_MODES = ["dynamic", "dynamic-fast", 0.5]
FP_RATES = [0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
# extract_lesion_candidates' keyword defaults (asserted against its signature below)
ELC_DEFAULTS = {"min_voxels_detection": 10, "num_lesions_to_extract": 5, "dynamic_threshold_factor": 2.5,
                "max_prob_round_decimals": None, "remove_adjacent_lesion_candidates": True}
DYN_INTERNAL = {"max_prob_failsafe_stopping_threshold": 0.01, "lesion_confidence_aggregation": "np.max",
                "version": "1 for 'dynamic', 2 for 'dynamic-v2' (not settable otherwise via the wrapper)"}


# --------------------------------------------------------------------------- JSON
def nums(a):
    return [num(v) for v in np.asarray(a).ravel().tolist()]


# --------------------------------------------------------------------------- synthetic cases
def grid():
    return np.indices(SHAPE, dtype=np.float64)


G = grid()


def bump(center, sigma, peak):
    """Gaussian bump, peak value exactly `peak` at an integer centre voxel."""
    s = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (3,))
    r2 = sum(((g - c) / si) ** 2 for g, c, si in zip(G, center, s))
    return peak * np.exp(-0.5 * r2)


def ball(center, radius):
    r2 = sum((g - c) ** 2 for g, c in zip(G, center))
    return r2 <= radius * radius


def finish(p, rng=None, noise=0.0):
    """Cut the tails (< 1e-3 -> 0), optionally add quantised background noise (multiples of 2^-10,
    <= noise), clip to [0, 1], round to float32 once."""
    p = np.where(p < 1e-3, 0.0, p)
    if noise > 0:
        q = rng.integers(0, int(noise * 1024) + 1, size=SHAPE) / 1024.0
        p = np.maximum(p, q)
    return np.clip(p, 0.0, 1.0).astype(np.float32)


def cases():
    out = []

    def add(name, gt_balls, bumps, desc, noise=0.0, seed=0, extra=None):
        g = np.zeros(SHAPE, dtype=bool)
        for c, r in gt_balls:
            g |= ball(c, r)
        p = np.zeros(SHAPE)
        for c, s, pk in bumps:
            p = np.maximum(p, bump(c, s, pk))
        if extra is not None:
            p = extra(p)
        p = finish(p, np.random.default_rng(seed), noise)
        out.append((name, g.astype(np.uint8), p, desc))

    add("c00_single_hit", [((16, 16, 8), 3)], [((16, 16, 8), 2.2, 0.9)],
        "one GT ball r=3, centred bump peak 0.9 (good IoU)")
    add("c01_two_hits_one_fp", [((8, 8, 5), 3), ((22, 20, 10), 2.5)],
        [((8, 8, 5), 2.3, 0.8), ((23, 21, 10), 2.0, 0.45), ((24, 6, 8), 1.8, 0.6)],
        "two GT balls: centred hit 0.8, offset hit 0.45; FP bump 0.6; noise <= 0.01", noise=0.01, seed=101)
    add("c02_low_iou_and_missed", [((10, 10, 8), 3), ((24, 24, 6), 2)],
        [((15, 10, 8), 1.6, 0.65)],
        "GT A with a bump shifted 5 voxels (IoU < 0.1: FN + FP), GT B missed entirely")
    add("c03_no_gt_two_fp", [], [((8, 24, 8), 2.0, 0.3), ((24, 8, 8), 2.0, 0.7)],
        "no GT; FP bumps 0.3 and 0.7")
    add("c04_no_gt_noise_lt_0p01", [], [],
        "no GT; quantised noise only, max < 0.01 (dynamic: failsafe stop, no candidates; dynamic-fast: "
        "huge noise candidate)", noise=0.009, seed=104)
    add("c05_all_zero_map", [((16, 16, 8), 3)], [],
        "one GT lesion; probability map identically 0 (FN, case score 0)")
    add("c06_tie_a_hit", [((12, 12, 8), 3)], [((12, 12, 8), 2.0, 0.75)],
        "GT hit with peak 0.75 (same peak as c07's FP: lesion- and case-level tie across cases)")
    add("c07_tie_b_fp", [], [((20, 20, 8), 2.0, 0.75)],
        "no GT; FP bump with peak 0.75 (tie with c06)")
    add("c08_touching_split", [((11, 16, 8), 3), ((17, 16, 8), 3)],
        [((11, 16, 8), 2.0, 0.9), ((17, 16, 8), 2.0, 0.6)],
        "two touching bumps 0.9 / 0.6, 6 voxels apart, under ONE elongated GT lesion (two r=3 balls that "
        "touch): dynamic-fast (threshold 0.36) gives two candidates, both with IoU >= 0.1 -> 1 TP and the "
        "other is dropped (allow_unmatched=True) or FP (False); dynamic extracts 0.9 at 0.36, then 0.6's "
        "region at 0.24 reaches the 0.9 core through 0.9's shoulder, so it is skipped as adjacent")
    add("c09_touching_merged", [((13, 16, 8), 2), ((17, 16, 8), 2)],
        [((13, 16, 8), 2.2, 0.85), ((17, 16, 8), 2.2, 0.5)],
        "two bumps 0.85 / 0.5 only 4 voxels apart (saddle ~0.56 > 0.85/2.5): one merged candidate in every "
        "mode; one GT lesion under each peak -> 1 TP + 1 FN")
    add("c10_within_case_tie", [((24, 8, 8), 3)],
        [((8, 24, 8), 2.0, 0.55), ((24, 8, 8), 2.0, 0.55)],
        "two separate bumps with identical peak 0.55 (dynamic picks the first in C order, i.e. smallest "
        "(i,j,k) lexicographically, first; Fortran order would pick the other)")
    add("c11_small_spike", [((8, 8, 8), 3), ((24, 22, 8), 3)],
        [((8, 8, 8), 2.0, 0.7), ((24, 22, 8), 2.3, 0.5)],
        "GT hits 0.7 and 0.5 plus a 1-voxel spike 0.97 at (20,6,12): the spike is the global max but too "
        "small, so candidate extents use threshold 0.97/2.5; dynamic (v1) then stops, v2 continues",
        extra=lambda p: _spike(p, (20, 6, 12), 0.97))
    add("c12_more_than_five", [((6, 6, 4), 2.5), ((16, 6, 11), 2.5), ((26, 26, 4), 2.5), ((25, 6, 4), 2.5)],
        [((6, 6, 4), 1.8, 0.9), ((16, 6, 11), 1.8, 0.8), ((26, 26, 4), 1.8, 0.7), ((6, 26, 11), 1.8, 0.6),
         ((25, 6, 4), 1.8, 0.5), ((16, 25, 4), 1.8, 0.5)],
        "six bumps (0.9 .. 0.5) but num_lesions_to_extract=5; the two 0.5 bumps tie for the 5th slot: "
        "dynamic keeps the C-order-first one (25,6,4 is GT; 16,25,4 wins in C order)")
    add("c13_small_only", [((16, 16, 8), 2)],
        [((16, 16, 8), (0.7, 0.7, 0.7), 0.8)],
        "one GT lesion; only a tiny bump (<= 10 voxels above 0.8/2.5): no candidates; dynamic v1 returns "
        "confidences [(1, 0.0)] and an all-ones index map")
    add("c14_noisy_weak_hit", [((16, 16, 8), 3)], [((16, 16, 8), 2.4, 0.35)],
        "weak hit 0.35 with background noise <= 0.02 (noise above the 0.01 failsafe)", noise=0.02, seed=114)
    add("c15_border_and_broad", [((0, 0, 0), 3), ((31, 31, 15), 2)],
        [((0, 0, 0), (2.5, 2.5, 2.0), 0.95), ((20, 10, 8), (5.0, 5.0, 3.0), 0.2)],
        "corner GT hit 0.95 (anisotropic bump cut by the border); broad low FP bump 0.2; GT at the far "
        "corner missed")
    bar = [((i, 16, 8), 1.5) for i in range(6, 27)]
    add("c16_two_cands_one_gt", bar, [((10, 16, 8), 1.8, 0.8), ((22, 16, 8), 1.8, 0.4)],
        "one bar-shaped GT lesion (i 6..26) with two well separated bumps 0.8 / 0.4 on it, both IoU >= 0.1: "
        "the 0.4 candidate is dropped with allow_unmatched=True and an FP with False (all modes that find it)")
    return out


def _spike(p, at, v):
    p = p.copy()
    p[at] = v
    return p


# --------------------------------------------------------------------------- independent re-implementation
S26 = np.ones((3, 3, 3))


def c_first(mask):
    """C-order (k fastest) flat index of the first voxel of a mask."""
    return int(np.flatnonzero(mask.ravel(order="C"))[0])


def my_static(w, thr):
    """Components (26-conn) of {w >= thr, w != 0} with > min_voxels voxels; conf = max w (float32)."""
    lab, n = ndimage.label((w >= thr) & (w != 0), structure=S26)
    comps = []
    for i in range(1, n + 1):
        m = lab == i
        if int(m.sum()) > ELC_DEFAULTS["min_voxels_detection"]:
            comps.append((m, np.float32(w[m].max())))
    return comps


def my_extract(p, mode):
    """Returns (candidates as list of (conf, mask) in extraction/label order, raw confidences list, trace)."""
    p = p.astype(np.float32)
    f = np.float32(ELC_DEFAULTS["dynamic_threshold_factor"])
    if mode == "dynamic-fast" or not isinstance(mode, str):
        thr = np.float32(p.max()) / f if isinstance(mode, str) else np.float32(mode)
        comps = my_static(p, thr)
        return [(c, m) for m, c in comps], [float(c) for _, c in comps], [{"threshold": num(thr)}]
    version = 2 if mode == "dynamic-v2" else 1
    w = p.copy()
    cands, confs, trace = [], [], []
    taken = np.zeros(SHAPE, dtype=bool)
    while len(confs) < ELC_DEFAULTS["num_lesions_to_extract"]:
        m = np.float32(w.max())
        if m < np.float32(DYN_INTERNAL["max_prob_failsafe_stopping_threshold"]):
            trace.append({"max": num(m), "action": "stop: max < float32(0.01)"})
            break
        thr = m / f
        comps = my_static(w, thr)
        if not comps:
            if version >= 2:
                w[w > thr] = 0
                trace.append({"max": num(m), "threshold": num(thr), "action": "no component > 10 voxels: "
                              "v2 zeroes working voxels > threshold and continues"})
                continue
            if not taken.any():
                confs.append(0.0)
                trace.append({"max": num(m), "threshold": num(thr), "action": "no component > 10 voxels: "
                              "v1 appends confidence 0.0 (empty candidate, index map all ones) and stops"})
            else:
                trace.append({"max": num(m), "threshold": num(thr), "action": "no component > 10 voxels: "
                              "v1 stops (whole-volume pseudo-candidate is adjacent to earlier ones)"})
            break
        best = max(c for _, c in comps)
        tied = [mm for mm, c in comps if c == best]
        mask = min(tied, key=c_first)
        grown = ndimage.binary_dilation(taken, structure=S26)
        adjacent = bool((mask & grown).any())
        ev = {"max": num(m), "threshold": num(thr), "confidence": num(best), "voxels": int(mask.sum()),
              "tied_components": len(tied)}
        if adjacent:
            ev["action"] = "skipped: touches (26-neighbourhood) an earlier candidate"
        else:
            ev["action"] = f"accepted as candidate {len(confs) + 1}"
            cands.append((best, mask))
            confs.append(float(best))
            taken |= mask
        trace.append(ev)
        w[mask] = 0
    return cands, confs, trace


def fortran_indices(mask):
    return [int(v) for v in np.flatnonzero(mask.ravel(order="F"))]


# --------------------------------------------------------------------------- candidates
def upstream_candidates(p, mode):
    det, confs, idx = extract_lesion_candidates(p, threshold=mode)
    det = np.asarray(det)
    idx = np.asarray(idx)
    return det, confs, idx


def candidate_record(p, mode):
    det, confs, idx = upstream_candidates(p, mode)
    assert det.dtype == np.float32, det.dtype
    # candidates = distinct positive index labels that carry a non-zero detection value
    cands = []
    for lab in sorted(int(v) for v in np.unique(idx) if v > 0):
        m = (idx == lab) & (det != 0)
        if not m.any():
            continue
        vals = np.unique(det[m])
        assert len(vals) == 1, "non-constant candidate"
        assert not ((idx == lab) & (det == 0)).any() or mode in ("dynamic",), (mode, lab)
        cands.append((lab, np.float32(vals[0]), m))
    # the detection map's own 26-components must be exactly these candidates
    lab26, n26 = ndimage.label(det, structure=S26)
    assert n26 == len(cands), (mode, n26, len(cands))
    union = np.zeros(SHAPE, dtype=bool)
    for _, _, m in cands:
        union |= m
    assert np.array_equal(union, det != 0)
    # independent re-implementation
    mine, my_confs, trace = my_extract(p, mode)
    assert len(mine) == len(cands), (mode, len(mine), len(cands))
    for (lab, c, m), (c2, m2) in zip(cands, mine):
        assert c == c2 and np.array_equal(m, m2), (mode, lab, c, c2)
    assert [float(c) for _, c in confs] == [float(c) for c in my_confs], (mode, confs, my_confs)
    rec = {
        "confidences_returned": [[int(i), num(c)] for i, c in confs],
        "index_map_all_ones": bool(np.all(idx == 1)) if idx.size else False,
        "candidates": [],
    }
    for lab, c, m in cands:
        fi = fortran_indices(m)
        rec["candidates"].append({"index": lab, "confidence": num(c), "voxels": len(fi),
                                  "fortran_indices": fi})
    rec["trace"] = trace
    return det, rec


# --------------------------------------------------------------------------- metrics (independent)
def my_metrics(y_lists, case_target, case_pred):
    flat = [(int(a), float(b)) for yl in y_lists for a, b, _ in yl]
    n_cases = len(y_lists)
    n_les = sum(a for a, _ in flat)
    ths = sorted({b for _, b in flat}, reverse=True)
    TP = [sum(1 for a, b in flat if a == 1 and b >= t) for t in ths]
    FP = [sum(1 for a, b in flat if a == 0 and b >= t) for t in ths]
    if len(ths) >= 2:
        TP[-1] = TP[-2]
        FP[-1] = math.inf
        TPR = [float(np.float32(t) / np.float32(n_les)) if n_les else math.nan for t in TP]
        FPR = [float(np.float32(f) / np.float32(n_cases)) for f in FP]
    else:
        TP, FP = [0, 0], [0, math.inf]
        TPR = [t / n_les if n_les else math.nan for t in TP]
        FPR = [f / n_cases for f in FP]
    # AP: sum over distinct confidences t_k > 0 (descending) of (R_k - R_{k-1}) * P_k
    ap = 0.0
    r_prev = 0.0
    for t in ths:
        tp = sum(1 for a, b in flat if a == 1 and b >= t)
        fp = sum(1 for a, b in flat if a == 0 and b >= t)
        r = tp / n_les if n_les else 1.0
        prec = 0.0 if t == 0 else tp / (tp + fp)
        ap += (r - r_prev) * prec
        r_prev = r
    if not n_les and ths:
        ap = 0.0  # recall is 1 everywhere: AP = precision at the top threshold = 0 (no positives)
    # AUROC: Mann-Whitney with ties counted 1/2
    pos = [case_pred[i] for i in range(n_cases) if case_target[i] == 1]
    neg = [case_pred[i] for i in range(n_cases) if case_target[i] == 0]
    if pos and neg:
        s = sum((1.0 if a > b else 0.5 if a == b else 0.0) for a in pos for b in neg)
        auroc = s / (len(pos) * len(neg))
    else:
        auroc = math.nan
    return {"thresholds": ths, "TP": TP, "FP": FP, "TPR": TPR, "FPR": FPR, "AP": ap, "auroc": auroc}


def close(a, b, tol=1e-12):
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b or abs(a - b) <= tol


def metrics_record(m, check_case_pred=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tpr = np.asarray(m.lesion_TPR)
        fpr = np.asarray(m.lesion_FPR)
        pr = m.calculate_precision_recall()
        roc = m.calculate_ROC()
        ap = float(m.AP)
        auroc = float(m.auroc)
        score = float(m.score)
        sens = [float(m.lesion_TPR_at_FPR(r)) for r in FP_RATES]
        counts = m.calculate_counts()
    subj = list(m.subject_list)
    y_lists = [m.lesion_results[s] for s in subj]
    case_target = [int(m.case_target[s]) for s in subj]
    case_pred = [float(m.case_pred[s]) for s in subj]
    if check_case_pred is not None:
        assert case_pred == check_case_pred, (case_pred, check_case_pred)
    mine = my_metrics(y_lists, case_target, case_pred)
    assert [float(t) for t in m.thresholds] == mine["thresholds"], (list(m.thresholds), mine["thresholds"])
    assert [float(v) for v in counts["TP"]] == [float(v) for v in mine["TP"]]
    assert [float(v) for v in counts["FP"]] == [float(v) for v in mine["FP"]]
    assert all(close(float(a), b, 0) for a, b in zip(tpr, mine["TPR"])), (tpr, mine["TPR"])
    assert all(close(float(a), b, 0) for a, b in zip(fpr, mine["FPR"])), (fpr, mine["FPR"])
    assert close(ap, mine["AP"]), (ap, mine["AP"])
    assert close(auroc, mine["auroc"]), (auroc, mine["auroc"])
    return {
        "num_cases": int(m.num_cases),
        "num_lesions": int(m.num_lesions),
        "y_list": [[[int(a), num(b), num(c)] for a, b, c in yl] for yl in y_lists],
        "case_target": case_target,
        "case_pred": [num(v) for v in case_pred],
        "thresholds": nums(m.thresholds),
        "lesion_TP": nums(counts["TP"]),
        "lesion_FP": nums(counts["FP"]),
        "lesion_TPR": nums(tpr),
        "lesion_FPR": nums(fpr),
        "lesion_TPR_dtype": str(tpr.dtype),
        "precision": nums(pr["precision"]),
        "recall": nums(pr["recall"]),
        "AP": num(ap),
        "case_FPR": nums(roc["FPR"]),
        "case_TPR": nums(roc["TPR"]),
        "auroc": num(auroc),
        "score": num(score),
        "sensitivity_at_fp_per_case": {str(r): num(s) for r, s in zip(FP_RATES, sens)},
        "cpm_derived": num(sum(sens) / len(sens)),
    }


def edge_cases():
    """Metrics on hand-written y_lists (no volumes): picai's behaviour at the corners."""
    E = {
        "no_gt_lesions_anywhere": ({0: [(0, 0.7, 0.0)], 1: [(0, 0.3, 0.0)], 2: []},
                                   "no GT lesion in any case: num_lesions 0 -> lesion_TPR all nan; recall is "
                                   "1 everywhere (sklearn warning) so AP = precision at the top threshold = 0; "
                                   "all case targets 0 -> AUROC nan"),
        "no_candidates_anywhere": ({0: [(1, 0.0, 0.0)], 1: [(1, 0.0, 0.0), (1, 0.0, 0.0)], 2: []},
                                   "lesions but no candidates: single threshold 0 -> TP=[0,0], FP=[0,inf] "
                                   "(float64 branch); AP 0; case preds all 0 -> AUROC 0.5"),
        "single_confidence_no_fn": ({0: [(1, 0.6, 0.5)], 1: [(0, 0.6, 0.0)]},
                                    "one distinct confidence and no FN: len(thresholds) < 2 -> TP=[0,0], "
                                    "FP=[0,inf] although one TP exists at 0.6 (quirk); AP still 0.5"),
        "no_fn_last_point_overwritten": ({0: [(1, 0.9, 0.5), (0, 0.4, 0.0)], 1: [(1, 0.2, 0.3)],
                                          2: [(0, 0.6, 0.0)]},
                                         "no FN so 0 is not a threshold: the genuine lowest operating point "
                                         "(t=0.2: TP 2, FP 2) is overwritten with TP[-2], FP=inf"),
        "all_cases_positive": ({0: [(1, 0.9, 0.5)], 1: [(1, 0.0, 0.0), (0, 0.3, 0.0)]},
                               "every case has a GT lesion: no negatives -> AUROC nan (score nan)"),
        "fn_and_fp_interleaved": ({0: [(1, 0.8, 0.4), (1, 0.0, 0.0), (0, 0.8, 0.0)], 1: [(0, 0.5, 0.0)],
                                   2: [(1, 0.5, 0.2), (0, 0.1, 0.0)], 3: [], 4: [(1, 0.0, 0.0)]},
                                  "ties between a TP and an FP at 0.8 and 0.5, FNs, an empty case"),
    }
    out = {}
    for name, (res, desc) in E.items():
        target = {k: (max(a for a, _, _ in v) if v else 0) for k, v in res.items()}
        pred = {k: (max(b for _, b, _ in v) if v else 0.0) for k, v in res.items()}
        m = Metrics(lesion_results=res, case_target=target, case_pred=pred)
        out[name] = {"description": desc, **metrics_record(m)}
    return out


# --------------------------------------------------------------------------- main
def check_defaults():
    import inspect
    sig = inspect.signature(extract_lesion_candidates).parameters
    assert sig["threshold"].default == "dynamic-fast"
    for k, v in ELC_DEFAULTS.items():
        assert sig[k].default == v, (k, sig[k].default)
    from report_guided_annotation.extract_lesion_candidates import extract_lesion_candidates_dynamic
    sd = inspect.signature(extract_lesion_candidates_dynamic).parameters
    assert sd["max_prob_failsafe_stopping_threshold"].default == 0.01
    assert sd["version"].default == 1
    from picai_eval.eval import evaluate as ev
    se = inspect.signature(ev).parameters
    assert se["min_overlap"].default == 0.10 and se["overlap_func"].default == "IoU"
    assert se["case_confidence_func"].default == "max"
    assert se["allow_unmatched_candidates_with_minimal_overlap"].default is True


def main():
    check_defaults()
    if OUT.exists():
        for sub in ("cases",):
            if (OUT / sub).exists():
                shutil.rmtree(OUT / sub)
    (OUT / "cases" / "gt").mkdir(parents=True, exist_ok=True)
    (OUT / "cases" / "prob").mkdir(parents=True, exist_ok=True)

    made = cases()
    names = [c[0] for c in made]
    assert names == sorted(names)
    for name, g, p, _ in made:
        save_nifti(OUT / "cases" / "gt" / f"{name}.nii.gz", g, EYE)
        save_nifti(OUT / "cases" / "prob" / f"{name}.nii.gz", p, EYE)
    # everything below works on what was written
    gts, probs = [], []
    for name, g0, p0, _ in made:
        g = np.asanyarray(nib.load(str(OUT / "cases" / "gt" / f"{name}.nii.gz")).dataobj)
        p = np.asanyarray(nib.load(str(OUT / "cases" / "prob" / f"{name}.nii.gz")).dataobj)
        assert g.dtype == np.uint8 and p.dtype == np.float32 and np.array_equal(g, g0) and np.array_equal(p, p0)
        assert p.min() >= 0 and p.max() <= 1
        gts.append(g)
        probs.append(p)

    # ---- candidates
    cand_doc = {
        "tool": f"report_guided_annotation {pkg_version('report_guided_annotation')}",
        "made_by": "scripts/crosscheck_froc.py",
        "call": "extract_lesion_candidates(prob_float32, threshold=<mode>) with every other argument left at "
                "its default",
        "defaults": {**ELC_DEFAULTS, "threshold_default": "dynamic-fast"},
        "dynamic_internal_defaults": DYN_INTERNAL,
        "modes": [str(m) for m in MODES],
        "shape": list(SHAPE),
        "index_order": "fortran_indices: flat i + nx*(j + ny*k) (i fastest, shape [nx, ny, nz]), sorted ascending",
        "candidate_order": "ascending 'index' = value in the returned index map (dynamic: extraction order "
                           "1..; static/dynamic-fast: scipy label number, i.e. order of first voxel in C order)",
        "cases": {},
    }
    det_maps = {str(m): [] for m in MODES}
    for (name, g, p, desc), gt, pr in zip(made, gts, probs):
        entry = {"description": desc, "gt_voxels": int(gt.sum()),
                 "gt_lesions": int(ndimage.label(gt, structure=S26)[1]), "prob_max": num(pr.max()),
                 "modes": {}}
        for mode in MODES:
            det, rec = candidate_record(pr, mode)
            det_maps[str(mode)].append(det)
            entry["modes"][str(mode)] = rec
        cand_doc["cases"][name] = entry
        print(f"{name:28s} " + "  ".join(
            f"{m}:{[c['confidence'] for c in entry['modes'][str(m)]['candidates']]}" for m in MODES))
    (OUT / "candidates.json").write_text(dump_stable(cand_doc))

    # ---- metrics
    met_doc = {
        "tool": f"picai_eval {pkg_version('picai_eval')}, scikit-learn {pkg_version('scikit-learn')}, "
                f"numpy {pkg_version('numpy')}",
        "made_by": "scripts/crosscheck_froc.py",
        "case_order": names,
        "call": "evaluate(y_det=[detection map of each case from extract_lesion_candidates(prob, threshold=mode)[0]],"
                " y_true=[gt mask], allow_unmatched_candidates_with_minimal_overlap=<setting>) -- all else default "
                "(min_overlap 0.1, overlap_func 'IoU', case_confidence_func 'max', y_det_postprocess_func None, "
                "sample_weight None, subject_list None -> ids 0..15 in case_order). Asserted identical to passing "
                "the probability maps with y_det_postprocess_func=lambda p: extract_lesion_candidates(p, "
                "threshold=mode)[0].",
        "non_finite": "inf / nan are written as the strings \"inf\" / \"nan\"",
        "fp_rates": FP_RATES,
        "runs": {},
        "edge_cases": {},
    }
    for mode in METRIC_MODES:
        dets = det_maps[str(mode)]
        for allow in (True, False):
            m = evaluate(y_det=dets, y_true=gts, allow_unmatched_candidates_with_minimal_overlap=allow)
            m2 = evaluate(y_det=probs, y_true=gts, allow_unmatched_candidates_with_minimal_overlap=allow,
                          y_det_postprocess_func=lambda x, mode=mode: _quiet_extract(x, mode))
            r1 = metrics_record(m, check_case_pred=[float(d.max()) for d in dets])
            r2 = metrics_record(m2)
            assert json.dumps(r1) == json.dumps(r2), f"postprocess path differs for {mode}"
            key = f"{mode}|allow_unmatched={allow}"
            met_doc["runs"][key] = {"mode": str(mode), "allow_unmatched_candidates_with_minimal_overlap": allow,
                                    **r1}
            print(f"{key:40s} AP={r1['AP']!r} auroc={r1['auroc']!r} score={r1['score']!r}")
    met_doc["edge_cases"] = edge_cases()
    (OUT / "metrics.json").write_text(dump_stable(met_doc))
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"fixtures/froc: {total} bytes")


def _quiet_extract(x, mode):
    # no stdout redirection here: evaluate() runs this in worker threads and redirect_stdout is global
    return extract_lesion_candidates(x, threshold=mode)[0]


if __name__ == "__main__":
    main()
