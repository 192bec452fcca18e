#!/usr/bin/env python3
"""Reference per-case lesion counts from picai_eval 1.4.13 `evaluate_case`.

Writes fixtures/picai/<suite>/{gt,pred}/<case>.nii.gz (uint8 binary masks) and
fixtures/picai/<suite>/expected.json for the suites `picai_tests`, `sct`, `synthetic`.

evaluate_case is called with the binary prediction (float 0/1) as y_det, the binary GT
as y_true, allow_unmatched_candidates_with_minimal_overlap=False, everything else default
(min_overlap=0.1, overlap_func='IoU').  From its y_list of (is_lesion, confidence, overlap):
  tp = is_lesion==1 and confidence>0, fn = is_lesion==1 and confidence==0,
  fp = is_lesion==0 and confidence>0.
Matched pairs are recomputed independently (same semantics) and cross-checked against
picai's y_list; labels in "pairs" use the fixtures' CCL convention (26-connectivity,
numbered 1..N by first voxel in Fortran / i-fastest order).
"""
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _venv  # noqa: E402

_venv.ensure()

import shutil  # noqa: E402

import cc3d  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402

from picai_eval.eval import evaluate_case  # noqa: E402

from _fixio import dump_json, save_nifti  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "picai"
SCT = ROOT / "fixtures" / "sct"
MIN_OVERLAP = 0.1
EYE = np.eye(4)
ANISO = np.diag([0.5, 0.5, 3.0, 1.0])


# --------------------------------------------------------------------------- helpers
def label26(mask):
    lab = cc3d.connected_components(np.asfortranarray(mask.astype(np.uint8)),
                                    connectivity=26, out_dtype=np.uint32)
    return lab, int(lab.max())


def own_matching(gt, pred):
    """Independent re-implementation of picai's per-case matching (for pairs + cross-check)."""
    lg, ng = label26(gt)
    lp, npd = label26(pred)
    inter = np.zeros((ng + 1, npd + 1), dtype=np.int64)
    np.add.at(inter, (lg.ravel(), lp.ravel()), 1)
    sg = np.bincount(lg.ravel(), minlength=ng + 1)
    sp = np.bincount(lp.ravel(), minlength=npd + 1)
    pairs, ties = [], False
    if ng and npd:
        I = inter[1:, 1:]
        U = sg[1:, None] + sp[None, 1:] - I
        iou = I / U
        ok = 10 * I >= U  # IoU >= 0.1 in exact integer arithmetic
        w = np.where(ok, 1.0 + iou, 0.0)
        r, c = linear_sum_assignment(w, maximize=True)
        for a, b in zip(r, c):
            if w[a, b] > 0:
                pairs.append([int(a + 1), int(b + 1), int(I[a, b]), int(U[a, b])])
        for m in (w, w.T):
            for row in m:
                pos = row[row > 0]
                if len(pos) != len(np.unique(pos)):
                    ties = True
    tp = len(pairs)
    return {"gt": ng, "pred": npd, "tp": tp, "fp": npd - tp, "fn": ng - tp,
            "pairs": sorted(pairs), "ties": ties}


def picai_counts(gt, pred):
    y_det = (pred != 0).astype(np.float32)
    y_true = (gt != 0).astype(np.int32)
    y_list, *_ = evaluate_case(y_det=y_det, y_true=y_true,
                               allow_unmatched_candidates_with_minimal_overlap=False)
    tp = sum(1 for l, c, _ in y_list if l == 1 and c > 0)
    fn = sum(1 for l, c, _ in y_list if l == 1 and c == 0)
    fp = sum(1 for l, c, _ in y_list if l == 0 and c > 0)
    gtn = sum(1 for l, _, _ in y_list if l == 1)
    assert tp + fn == gtn
    assert all(c > 0 for l, c, _ in y_list if l == 0), "candidate with confidence 0?"
    tp_overlaps = sorted(float(o) for l, c, o in y_list if l == 1 and c > 0)
    return {"gt": gtn, "tp": tp, "fp": fp, "fn": fn}, tp_overlaps


def evaluate(gt, pred):
    gt = (gt != 0).astype(np.uint8)
    pred = (pred != 0).astype(np.uint8)
    assert gt.shape == pred.shape and gt.ndim == 3
    pc, tp_ov = picai_counts(gt, pred)
    own = own_matching(gt, pred)
    assert pc["tp"] + pc["fp"] == own["pred"], (pc, own)
    for k in ("gt", "tp", "fp", "fn"):
        assert pc[k] == own[k], (k, pc, own)
    own_ov = sorted(p[2] / p[3] for p in own["pairs"])
    # picai adds 1e-8 to numerator and denominator of IoU; tolerance covers that.
    assert np.allclose(own_ov, tp_ov, rtol=0, atol=1e-6), (own_ov, tp_ov)
    return {"gt": pc["gt"], "pred": own["pred"], "tp": pc["tp"], "fp": pc["fp"], "fn": pc["fn"],
            "pairs": own["pairs"], "hungarian_ties": own["ties"]}


def write_suite(suite, cases, note):
    d = OUT / suite
    if d.exists():
        shutil.rmtree(d)
    (d / "gt").mkdir(parents=True)
    (d / "pred").mkdir(parents=True)
    expected = {}
    for name, gt, pred, affine, header, desc in cases:
        gt = (gt != 0).astype(np.uint8)
        pred = (pred != 0).astype(np.uint8)
        save_nifti(d / "gt" / f"{name}.nii.gz", gt, affine, like=header)
        save_nifti(d / "pred" / f"{name}.nii.gz", pred, affine, like=header)
        r = evaluate(gt, pred)
        r = {"description": desc, "shape": [int(s) for s in gt.shape],
             "spacing": [float(abs(affine[i, i])) for i in range(3)] if header is None
             else [float(z) for z in header.get_zooms()[:3]], **r}
        expected[name] = r
        print(f"[{suite}] {name:34s} gt={r['gt']} pred={r['pred']} tp={r['tp']} fp={r['fp']} fn={r['fn']}"
              + ("  (ties)" if r["hungarian_ties"] else ""))
    doc = {
        "tool": "picai_eval 1.4.13",
        "made_by": "scripts/make_picai_fixtures.py",
        "settings": {"min_overlap": MIN_OVERLAP, "overlap_func": "IoU",
                     "allow_unmatched_candidates_with_minimal_overlap": False},
        "note": note,
        "pairs_format": ("[gt_label, pred_label, intersection_voxels, union_voxels]; labels are 26-connected "
                         "components numbered 1..N by first voxel in Fortran (i-fastest) order; pairs come "
                         "from an independent re-implementation cross-checked against picai's counts and "
                         "TP overlaps. Where hungarian_ties is true the pairing may legitimately differ; "
                         "only gt/pred/tp/fp/fn are normative."),
        "cases": expected,
    }
    (d / "expected.json").write_text(dump_json(doc))


def box(shape, lo, hi):
    m = np.zeros(shape, dtype=np.uint8)
    m[tuple(slice(a, b) for a, b in zip(lo, hi))] = 1
    return m


def vox(shape, pts):
    m = np.zeros(shape, dtype=np.uint8)
    for p in pts:
        m[tuple(p)] = 1
    return m


def line(shape, x0, x1, y=0, z=0):
    """Voxels x0 <= x < x1 at (y, z)."""
    m = np.zeros(shape, dtype=np.uint8)
    m[x0:x1, y, z] = 1
    return m


def balls(shape, specs):
    g = np.indices(shape, dtype=np.float64)
    m = np.zeros(shape, dtype=bool)
    for c, r in specs:
        m |= sum((gi - ci) ** 2 for gi, ci in zip(g, c)) <= r * r
    return m.astype(np.uint8)


# --------------------------------------------------------------------------- picai_tests
def picai_test_cases():
    """Re-creations of the 10 parametrised cases of picai_eval tests/test_case_evaluation.py
    (test_evaluate_case).  Upstream reads them from tests/test-maps/*.nii.gz, which are
    not available here, so the arrays are rebuilt from the documented geometry (the IoUs
    in the test comments); each is checked against the test's expected y_list using
    picai's default settings before our binary / allow_unmatched=False counts are taken."""
    S = (16, 16)
    out = []

    def add(i, det, lab, expected, desc):
        det = det.astype(np.float32)
        lab = lab.astype(np.int32)
        det3, lab3 = det[..., None], lab[..., None]
        y_list, *_ = evaluate_case(y_det=det3, y_true=lab3)  # upstream test call (defaults)
        got = sorted((int(a), float(b), float(c)) for a, b, c in y_list)
        exp = sorted((int(a), float(b), float(c)) for a, b, c in expected)
        assert len(got) == len(exp) and np.allclose(np.array(got), np.array(exp), atol=1e-6), (i, got, exp)
        out.append((f"test_evaluate_case_{i}", lab3, (det3 != 0), EYE, None, desc))

    z = np.zeros(S)
    # 0: no GT, no detections
    add(0, z, z, [], "Case 0: no ground truth lesions, no detection maps.")
    # 1: single GT lesion, no detection. 1 FN
    g = z.copy(); g[5:9, 5:9] = 1
    add(1, z, g, [(1, 0.0, 0.0)], "Case 1: single ground truth lesion, no detection maps. 1 FN.")
    # 2: no GT, one detection. 1 FP
    d = z.copy(); d[5:9, 5:9] = 1
    add(2, d, z, [(0, 1.0, 0.0)], "Case 2: no ground truth lesion, single detection. 1 FP.")
    # 3: disjoint. 1 FN + 1 FP
    g = z.copy(); g[2:5, 2:5] = 1
    d = z.copy(); d[9:12, 9:12] = 1
    add(3, d, g, [(1, 0.0, 0.0), (0, 1.0, 0.0)], "Case 3: single GT lesion, single candidate with IoU = 0. 1 FN + 1 FP.")
    # 4: IoU 1/3. 1 TP
    g = z.copy(); g[4:6, 4:6] = 1
    d = z.copy(); d[5:7, 4:6] = 1
    add(4, d, g, [(1, 1.0, 1 / 3)], "Case 4: single GT lesion, single candidate IoU = 2/6 = 1/3. 1 TP.")
    # 5: cand1 IoU 9/41 conf 1, cand2 IoU 3/47 conf 2 (binarised in the fixture). 1 TP + 1 FP
    g = z.copy(); g[5:10, 5:10] = 1
    d = z.copy(); d[7:12, 7:12] = 1.0; d[1:6, 3:8] = 2.0
    add(5, d, g, [(1, 1.0, 9 / 41), (0, 2.0, 0.0)],
        "Case 5: single GT lesion, cand1 IoU 9/41 (conf 1), cand2 IoU 3/47 (conf 2 upstream; binarised here). 1 TP + 1 FP.")
    # 6: cand1 IoU 1/3 conf 1, cand2 IoU 2/7 conf 2. 1 TP (+1 FP with allow_unmatched=False)
    g = z.copy(); g[5, 0:6] = 1
    d = z.copy(); d[5, 0:2] = 1.0; d[5, 4:6] = 2.0; d[6, 5] = 2.0
    add(6, d, g, [(1, 1.0, 1 / 3)],
        "Case 6: single GT lesion, cand1 IoU 1/3 (conf 1), cand2 IoU 2/7 (conf 2 upstream; binarised). "
        "Upstream (allow_unmatched=True): 1 TP; here allow_unmatched=False: 1 TP + 1 FP.")
    # 7: two GT lesions, one candidate with IoU 1/3 with either. 1 TP + 1 FN
    g = z.copy(); g[5, 5] = 1; g[5, 7] = 1
    d = z.copy(); d[5, 5:8] = 1
    add(7, d, g, [(1, 1.0, 1 / 3), (1, 0.0, 0.0)],
        "Case 7: two GT lesions, single candidate with IoU 1/3 with either (Hungarian tie). 1 TP + 1 FN.")
    # 8: two GT lesions, candidate IoU 5/11 with one and 1/11 with the other. 1 TP + 1 FN
    g = z.copy(); g[2, 0:5] = 1; g[2, 10] = 1
    d = z.copy(); d[2, 0:11] = 1
    add(8, d, g, [(1, 1.0, 5 / 11), (1, 0.0, 0.0)],
        "Case 8: two GT lesions, candidate IoU 5/11 with one and 1/11 with the other. 1 TP + 1 FN.")
    # 9: single GT lesion, candidate IoU 1/25. 1 FN + 1 FP
    g = z.copy(); g[5:10, 5:10] = 1
    d = z.copy(); d[7, 7] = 1
    add(9, d, g, [(1, 0.0, 0.0), (0, 1.0, 0.0)],
        "Case 9: single GT lesion, candidate IoU 1/25. 1 FN + 1 FP.")
    return out


# --------------------------------------------------------------------------- sct
def sct_cases():
    out = []
    for name, gtf, pf in [("rootlets", "t2_seg-deepseg_rootlets-manual", "t2_seg-deepseg_rootlets"),
                          ("cord3d", "t2_seg-manual", "t2_seg-deepseg_sc-3d"),
                          ("cord2d", "t2_seg-manual", "t2_seg-deepseg_sc-2d")]:
        gi = nib.load(str(SCT / f"{gtf}.nii.gz"))
        pi = nib.load(str(SCT / f"{pf}.nii.gz"))
        assert np.allclose(gi.affine, pi.affine)
        g = np.asanyarray(gi.dataobj) != 0
        p = np.asanyarray(pi.dataobj) != 0
        out.append((name, g, p, gi.affine, gi.header,
                    f"fixtures/sct/{gtf}.nii.gz (GT) vs fixtures/sct/{pf}.nii.gz (pred), binarised != 0"))
    return out


# --------------------------------------------------------------------------- synthetic
def synthetic_cases():
    S = (40, 40, 24)
    out = []

    def add(name, g, p, desc, affine=EYE):
        out.append((name, g, p, affine, None, desc))

    z = np.zeros(S, dtype=np.uint8)
    g = box(S, (10, 10, 5), (16, 18, 10))
    add("exact_single", g, g.copy(), "prediction identical to the single GT lesion")
    g = box(S, (2, 2, 2), (6, 6, 6)) | box(S, (20, 20, 10), (25, 23, 14)) | vox(S, [(35, 35, 20)])
    add("exact_multi", g, g.copy(), "three GT lesions (one single voxel), predicted exactly")
    add("exact_multi_aniso", g, g.copy(), "as exact_multi, spacing (0.5,0.5,3.0)", ANISO)

    add("iou_0p1_exact_sub", line(S, 5, 15, 20, 12), vox(S, [(9, 20, 12)]),
        "pred = 1 voxel inside a 10-voxel GT: I=1, U=10, IoU exactly 0.1 -> matched")
    add("iou_0p1_exact_shift", line(S, 5, 10, 20, 12), line(S, 9, 15, 20, 12),
        "GT 5 voxels, pred 6 voxels overlapping 1: I=1, U=10, IoU exactly 0.1 -> matched")
    g = box(S, (10, 10, 10), (20, 20, 11))
    add("iou_0p1_exact_100", g, line(S, 10, 20, 15, 10),
        "GT 10x10 plate, pred a 10-voxel line inside it: I=10, U=100, IoU exactly 0.1 -> matched")
    add("iou_below_1_11", line(S, 5, 16, 20, 12), vox(S, [(9, 20, 12)]),
        "pred 1 voxel inside 11-voxel GT: IoU 1/11 < 0.1 -> 1 FN + 1 FP")
    g = box(S, (10, 10, 10), (20, 20, 11))
    p = line(S, 10, 20, 15, 10); p[9, 15, 10] = 1  # 10 inside + 1 outside: I=10, U=101
    add("iou_below_10_101", g, p, "I=10, U=101: IoU 0.0990 < 0.1 -> 1 FN + 1 FP")
    add("iou_above_1_9", line(S, 5, 14, 20, 12), vox(S, [(9, 20, 12)]),
        "pred 1 voxel inside 9-voxel GT: IoU 1/9 > 0.1 -> TP")
    g = box(S, (10, 10, 10), (19, 21, 11))  # 99 voxels
    add("iou_above_10_99", g, line(S, 10, 19, 15, 10) | vox(S, [(10, 16, 10)]),
        "I=10, U=99: IoU 0.101 -> TP")

    g = box(S, (10, 10, 8), (20, 16, 14))
    p = box(S, (10, 10, 8), (15, 16, 14)) | box(S, (16, 10, 8), (20, 16, 14))
    add("split_gt_two_preds", g, p, "one GT lesion (x 10..19) covered by two separate predictions (x 10..14 IoU 0.5, "
        "x 16..19 IoU 0.4; unpredicted slice x=15) -> 1 TP + 1 FP")
    add("split_gt_two_preds_aniso", g, p, "as split_gt_two_preds, spacing (0.5,0.5,3.0)", ANISO)
    p = vox(S, [(10, 10, 8), (19, 15, 13)])
    add("split_gt_small_parts", g, p, "GT 180 voxels, two 1-voxel predictions inside -> 1 FN + 2 FP")
    g = box(S, (5, 5, 5), (10, 10, 10)) | box(S, (12, 5, 5), (17, 10, 10))
    p = box(S, (5, 5, 5), (17, 10, 10))
    add("merged_two_gt", g, p, "one prediction covers two GT lesions and the gap between -> 1 TP + 1 FN (Hungarian tie)")
    g = box(S, (5, 5, 5), (10, 10, 10)) | box(S, (12, 5, 5), (17, 10, 10)) | box(S, (19, 5, 5), (24, 10, 10))
    p = box(S, (5, 5, 5), (24, 10, 10))
    add("merged_three_gt", g, p, "one prediction bridges three GT lesions, IoU 125/475 each -> 1 TP + 2 FN")

    g = box(S, (10, 10, 10), (12, 12, 12))
    p = g | box(S, (12, 12, 12), (14, 14, 14))
    add("diag_corner_pred", g, p, "pred = two 2x2x2 cubes touching only at a corner (1 component at 26-conn, 2 at 6/18) -> 1 TP")
    g = box(S, (10, 10, 10), (12, 12, 12)) | box(S, (12, 12, 12), (14, 14, 14))
    add("diag_corner_gt", g, box(S, (10, 10, 10), (12, 12, 12)),
        "GT = two cubes touching only at a corner (1 lesion at 26-conn); pred = one cube, IoU 0.5 -> 1 TP")
    g = box(S, (10, 10, 10), (12, 12, 14)) | box(S, (12, 12, 10), (14, 14, 14))
    add("diag_edge_gt", g, g.copy(),
        "GT = pred = two bars touching only along an edge (1 component at 18/26, 2 at 6) -> 1 TP")
    i, j, k = np.indices((6, 6, 6))
    chk = (((i + j + k) % 2) == 0).astype(np.uint8)
    g = z.copy(); g[20:26, 20:26, 5:11] = chk
    p = z.copy(); p[20:26, 20:26, 5:11] = 1 - chk
    add("diag_checker", g, p,
        "GT and pred are complementary 6x6x6 checkerboards: each one component at 26-conn, IoU 0 -> 1 FN + 1 FP")

    # Hungarian vs greedy: X overlaps A (0.4375) and B (2/13); Y overlaps only A (1/7).
    g = line(S, 10, 20, 20, 12) | line(S, 22, 24, 20, 12)
    p = line(S, 6, 12, 20, 12) | line(S, 13, 26, 20, 12)
    add("hungarian_vs_greedy", g, p,
        "GT A=[10,20), B=[22,24); pred Y=[6,12), X=[13,26) on one line. Greedy by IoU gives X-A only; "
        "Hungarian gives X-B + Y-A -> 2 TP")
    # picai maximises sum(1+IoU): two high-IoU matches beat three matches at ~0.103
    S2 = (96, 8, 8)
    c, a1, a2, b1, b2 = 4, 34, 8, 34, 4
    x = 0
    C = (x, x + c); x += c + 1
    A1 = (x, x + a1); x += a1; gA = x; x += 1
    A2 = (x, x + a2); x += a2; x += 1
    B1 = (x, x + b1); x += b1; gB = x; x += 1
    B2 = (x, x + b2); x += b2
    g = line(S2, C[0], C[1], 4, 4) | line(S2, A1[0], A2[1], 4, 4) | line(S2, B1[0], B2[1], 4, 4)
    p = line(S2, C[0], A1[1], 4, 4) | line(S2, A2[0], B1[1], 4, 4) | line(S2, B2[0], B2[1], 4, 4)
    add("hungarian_weight_not_count", g, p,
        "3 GT (C,A,B) and 3 preds X=C+bridge+A1, Y=A2+bridge+B1, Z=B2 on one line. Pairs X-A, Y-B have IoU 0.708; "
        "X-C, Y-A, Z-B have IoU 0.1026. picai maximises sum(1+IoU): {X-A,Y-B}=3.417 beats {X-C,Y-A,Z-B}=3.308, "
        "so 2 TP (not the 3 a cardinality-first matching would give)")
    # two candidates compete for one GT; the better one wins, the other is FP
    g = box(S, (10, 10, 10), (20, 14, 14))
    p = box(S, (10, 10, 10), (16, 14, 14)) | box(S, (17, 10, 10), (20, 14, 14))
    add("two_candidates_one_gt", g, p, "two candidates (IoU 0.6 and 0.3) for one GT -> 1 TP + 1 FP")

    rng = np.random.default_rng(4242)
    g = box(S, (5, 5, 5), (10, 10, 10)) | box(S, (25, 25, 12), (30, 31, 18))
    p = g.copy()
    pts = set()
    while len(pts) < 30:
        q = (int(rng.integers(0, 20)) * 2, int(rng.integers(0, 20)) * 2, int(rng.integers(0, 12)) * 2)
        if not g[max(q[0]-1, 0):q[0]+2, max(q[1]-1, 0):q[1]+2, max(q[2]-1, 0):q[2]+2].any():
            pts.add(q)
    p |= vox(S, sorted(pts))
    add("many_small_fps", g, p, "2 exact matches plus 30 isolated single-voxel FPs (even coordinates) -> 2 TP + 30 FP")

    p = box(S, (2, 2, 2), (5, 5, 5)) | box(S, (20, 20, 10), (22, 22, 12)) | vox(S, [(39, 39, 23)])
    add("empty_gt", z.copy(), p, "no GT; three predictions -> 3 FP")
    add("empty_pred", p.copy(), z.copy(), "three GT lesions; empty prediction -> 3 FN")
    add("both_empty", z.copy(), z.copy(), "both empty -> all zero")

    g = box(S, (0, 0, 0), (4, 4, 3)) | box(S, (36, 36, 21), (40, 40, 24))
    p = box(S, (0, 0, 0), (3, 4, 3)) | box(S, (37, 37, 22), (40, 40, 24))
    add("border_corners", g, p, "lesions touching the volume corners (index 0 and max) -> 2 TP")
    g = z.copy(); g[0, 10:14, 5:8] = 1; g[39, 10:14, 5:8] = 1
    p = z.copy(); p[39, 11:15, 5:8] = 1; p[0, 9:13, 6:9] = 1
    add("border_wrap", g, p,
        "lesions on opposite x faces (x=0 and x=39, same y/z): must not wrap around -> 2 GT, 2 pred, 2 TP")
    g = z.copy(); g[39, 10, 5] = 1; g[0, 11, 5] = 1
    add("flat_index_neighbours", g, g.copy(),
        "voxels (39,10,5) and (0,11,5) are consecutive in Fortran order but not neighbours -> 2 GT, 2 TP")
    g = box(S, (10, 10, 5), (15, 15, 8)) | box(S, (10, 10, 9), (15, 15, 13))
    p = box(S, (10, 10, 5), (15, 15, 13))
    add("slice_gap", g, p, "GT slabs z 5..7 and z 9..12 separated by one empty z-slice; pred fills z 5..12 -> "
        "1 TP (the thicker slab) + 1 FN")

    for n in range(4):
        rng = np.random.default_rng(7000 + n)
        specs_g, specs_p = [], []
        for _ in range(int(rng.integers(4, 9))):
            cc = [float(rng.uniform(0, s - 1)) for s in S]
            r = float(rng.uniform(1.0, 5.0))
            specs_g.append((cc, r))
            if rng.random() < 0.8:  # detected, perturbed
                specs_p.append(([ci + float(rng.normal(0, 1.5)) for ci in cc], r * float(rng.uniform(0.6, 1.4))))
        for _ in range(int(rng.integers(0, 5))):  # extra FPs
            specs_p.append(([float(rng.uniform(0, s - 1)) for s in S], float(rng.uniform(0.8, 3.0))))
        g, p = balls(S, specs_g), balls(S, specs_p)
        if n == 3:
            add(f"random_blobs_{n}_aniso", g, p, "random balls, perturbed prediction, spacing (0.5,0.5,3.0)", ANISO)
        else:
            add(f"random_blobs_{n}", g, p, "random balls (seeded), perturbed/missing/extra predicted balls")
    return out


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    write_suite("picai_tests", picai_test_cases(),
                "Re-created arrays for picai_eval tests/test_case_evaluation.py::test_evaluate_case cases 0-9 "
                "(2D arrays with a singleton third axis). Each re-creation was checked against the upstream "
                "expected y_list with picai's defaults; the counts here use allow_unmatched...=False on the "
                "binarised detection map.")
    write_suite("sct", sct_cases(), "Real spinal-cord masks from fixtures/sct (binarised != 0), original geometry.")
    write_suite("synthetic", synthetic_cases(), "Seeded synthetic cases exercising the matching rules.")


if __name__ == "__main__":
    main()
