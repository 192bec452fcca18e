#!/usr/bin/env python3
"""Reference lesion counts and RQ / SQ / PQ from panoptica 2.1.7 (BrainLesion/panoptica).

Writes fixtures/panoptica/expected.json for the case folders
  fixtures/picai/synthetic/{gt,pred}   (suite "synthetic", 34 seeded cases)
  fixtures/picai/sct/{gt,pred}         (suite "sct", real spinal-cord masks)
  fixtures/panoptica/spine/{gt,pred}   (suite "spine", panoptica's own examples/spine_seg semantic maps,
                                        copied unchanged; see fixtures/panoptica/spine/SOURCE)

Every case is evaluated on binarised masks (value != 0) with

    Panoptica_Evaluator(expected_input=InputType.SEMANTIC,
                        instance_approximator=ConnectedComponentsInstanceApproximator(),
                        instance_matcher=<matcher>)            # everything else default

for two matchers: "greedy" = NaiveThresholdMatching(matching_metric=Metric.IOU, matching_threshold=0.5)
and "max-bipartite" = MaxBipartiteMatching(matching_metric=Metric.IOU, matching_threshold=0.5).
The spine suite is additionally evaluated per label value L (masks gt == L, pred == L) under
"per_label".  Matched pairs are read from panoptica's intermediate steps (log_intermediate_steps=True)
and renumbered to the fixtures' component convention (26-connected components numbered 1..N by first
voxel in Fortran / i-fastest order), with panoptica's own per-pair IoU.

Why: panoptica is the reference of lesioneval's `panoptica` preset; the JSON lets the Rust tests
compare counts and RQ/SQ/PQ with the upstream tool without running Python.

Every number is also recomputed by an independent numpy/scipy re-implementation of the semantics
written down in fixtures/panoptica/README.md (scipy.ndimage.label 26-connectivity, IoU of overlapping
pairs, greedy by descending IoU with IoU >= 0.5, Hungarian maximising summed IoU over pairs >= 0.5)
and asserted equal: tp/fp/fn and the pair sets exactly, rq/sq/sq_dsc/pq/pq_dsc within 1e-12.

panoptica 2.1.7 pins numpy < 2.3, which conflicts with scripts/requirements.txt, so this script runs
in its own venv .venv-panoptica built from scripts/requirements-panoptica.txt.

Run: python3 scripts/crosscheck_panoptica.py     (deterministic: stable JSON, sorted keys)
"""
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _venv  # noqa: E402

_venv.ensure(venv=".venv-panoptica", requirements="requirements-panoptica.txt")

import hashlib  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
from importlib.metadata import version as pkg_version  # noqa: E402

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402

from panoptica import (ConnectedComponentsInstanceApproximator, InputType, MaxBipartiteMatching,  # noqa: E402
                       Metric, NaiveThresholdMatching, Panoptica_Evaluator)
from panoptica._functionals import _get_paired_crop  # noqa: E402
from panoptica.metrics import MetricMode  # noqa: E402
from panoptica.utils.citation_reminder import disable_citation_reminder  # noqa: E402

from _fixio import dump_stable, num  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "panoptica"
SPINE = OUT / "spine"
SPINE_SRC = ROOT.parent / "shared" / "data" / "panoptica-spine"
SPINE_FILES = {  # fixture path -> (file name in the shared source, sha256)
    "gt/spine.nii.gz": ("semantic_ref.nii.gz", "a2dce36a244955b2388d8824393e34935a975f67255ed3d4ecd16cfd620920af"),
    "pred/spine.nii.gz": ("semantic_pred.nii.gz", "b2db47d5c4a47e8252607b5484bf53f79a35e1224aa087864179bb4d3635da37"),
}
SUITES = [  # (suite name, folder relative to the repo root)
    ("synthetic", "fixtures/picai/synthetic"),
    ("sct", "fixtures/picai/sct"),
    ("spine", "fixtures/panoptica/spine"),
]
THRESHOLD = 0.5
TOL = 1e-12
KEYS = ["num_ref_instances", "num_pred_instances", "tp", "fp", "fn", "rq", "sq", "sq_dsc", "pq", "pq_dsc"]


def matchers():
    return {
        "greedy": NaiveThresholdMatching(matching_metric=Metric.IOU, matching_threshold=THRESHOLD),
        "max-bipartite": MaxBipartiteMatching(matching_metric=Metric.IOU, matching_threshold=THRESHOLD),
    }


# --------------------------------------------------------------------------- JSON
def close(a, b, tol=TOL):
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= tol


# --------------------------------------------------------------------------- spine fixture
def sha256(p):
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def ensure_spine():
    """Copy panoptica's spine example maps (unchanged) into fixtures/panoptica/spine if missing."""
    for rel, (src, digest) in SPINE_FILES.items():
        dst = SPINE / rel
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(SPINE_SRC / src, dst)
        assert sha256(dst) == digest, f"{dst} is not the unchanged upstream file"
    lic = SPINE / "LICENSE"
    if not lic.exists():
        shutil.copyfile(SPINE_SRC / "LICENSE", lic)


# --------------------------------------------------------------------------- independent re-implementation
STRUCT = np.ones((3, 3, 3), dtype=bool)


def label26(mask):
    """26-connected components numbered 1..N by first voxel in Fortran (i-fastest) order."""
    lab, n = ndimage.label(np.ascontiguousarray(mask.T), structure=STRUCT)  # raster order of mask.T
    return np.ascontiguousarray(lab.T), int(n)


def overlap_table(lr, nr, lp, npd):
    inter = np.zeros((nr + 1, npd + 1), dtype=np.int64)
    np.add.at(inter, (lr.ravel(), lp.ravel()), 1)
    sr = np.bincount(lr.ravel(), minlength=nr + 1).astype(np.int64)
    sp = np.bincount(lp.ravel(), minlength=npd + 1).astype(np.int64)
    return inter, sr, sp


def own_eval(gt, pred):
    """Returns {matcher: result} plus the labelled maps, from our own reading of the semantics."""
    lr, nr = label26(gt)
    lp, npd = label26(pred)
    inter, sr, sp = overlap_table(lr, nr, lp, npd)
    cand = []  # (iou, dsc, ref, pred) for overlapping pairs with IoU >= 0.5
    for r, p in zip(*np.nonzero(inter[1:, 1:])):
        r, p = int(r) + 1, int(p) + 1
        i = int(inter[r, p])
        u = int(sr[r] + sp[p] - i)
        if 2 * i >= u:  # IoU >= 0.5 in exact integer arithmetic
            cand.append((i / u, 2.0 * i / float(sr[r] + sp[p]), r, p))
    ties = False
    for side in (2, 3):
        ids = [c[side] for c in cand]
        ties |= len(ids) != len(set(ids))

    # greedy: descending IoU, each ref / pred used at most once
    greedy, used_r, used_p = [], set(), set()
    for c in sorted(cand, key=lambda c: (-c[0], c[3], c[2])):
        if c[2] in used_r or c[3] in used_p:
            continue
        used_r.add(c[2]); used_p.add(c[3])
        greedy.append(c)

    # Hungarian: maximise the summed IoU over qualifying pairs
    hung = []
    if cand:
        rs = sorted({c[2] for c in cand}); ps = sorted({c[3] for c in cand})
        ri = {r: k for k, r in enumerate(rs)}; pi = {p: k for k, p in enumerate(ps)}
        w = np.zeros((len(rs), len(ps)))
        by = {}
        for c in cand:
            w[ri[c[2]], pi[c[3]]] = c[0]
            by[(c[2], c[3])] = c
        for a, b in zip(*linear_sum_assignment(w, maximize=True)):
            if w[a, b] > 0:
                hung.append(by[(rs[a], ps[b])])

    out = {}
    for name, pairs in (("greedy", greedy), ("max-bipartite", hung)):
        tp = len(pairs)
        if tp == 0:
            z = 0.0 if nr + npd > 0 else math.nan
            rq = sq = sq_dsc = z
        else:
            rq = tp / (tp + 0.5 * (npd - tp) + 0.5 * (nr - tp))
            sq = float(np.mean([c[0] for c in pairs]))
            sq_dsc = float(np.mean([c[1] for c in pairs]))
        out[name] = {"num_ref_instances": nr, "num_pred_instances": npd, "tp": tp, "fp": npd - tp,
                     "fn": nr - tp, "rq": rq, "sq": sq, "sq_dsc": sq_dsc, "pq": sq * rq, "pq_dsc": sq_dsc * rq,
                     "pairs": sorted([c[2], c[3], c[0]] for c in pairs)}
    return out, lr, lp, ties


# --------------------------------------------------------------------------- panoptica
def canon_map(pan, canon):
    """Bijection panoptica label -> canonical label (asserts both label the same components)."""
    fg = pan != 0
    assert np.array_equal(fg, canon != 0)
    if not fg.any():
        return {}
    pairs = np.unique(np.stack([pan[fg].astype(np.int64), canon[fg].astype(np.int64)]), axis=1)
    a, b = pairs[0].tolist(), pairs[1].tolist()
    assert len(set(a)) == len(a) == len(set(b)), "panoptica's components differ from 26-connected ones"
    return dict(zip(a, b))


def panoptica_pairs(res, gt, pred, lr, lp):
    """Matched pairs [ref, pred, iou] (canonical labels) from panoptica's intermediate steps."""
    steps = res.intermediate_steps_data
    if res.tp == 0:
        return []
    um = steps[InputType.UNMATCHED_INSTANCE.name]
    mt = steps[InputType.MATCHED_INSTANCE.name]
    crop = tuple(slice(None) for _ in gt.shape)
    if um.reference_arr.shape != gt.shape:  # crop_at_start: arrays live in the paired bounding box
        crop = _get_paired_crop(steps.original_prediction_arr, steps.original_reference_arr)
    assert um.reference_arr.shape == lr[crop].shape
    # the crop drops only background
    assert int(np.count_nonzero(lr[crop])) == int(np.count_nonzero(lr))
    assert int(np.count_nonzero(lp[crop])) == int(np.count_nonzero(lp))
    rmap = canon_map(um.reference_arr, lr[crop])
    pmap = canon_map(um.prediction_arr, lp[crop])
    ious = list(res.get_list_metric(Metric.IOU, MetricMode.ALL))
    matched = list(mt.matched_instances)
    assert len(ious) == len(matched) == res.tp, (len(ious), len(matched), res.tp)
    out = []
    for lab, iou in zip(matched, ious):
        orig_pred = np.unique(um.prediction_arr[mt.prediction_arr == lab])
        orig_pred = orig_pred[orig_pred != 0]
        assert len(orig_pred) == 1, orig_pred
        out.append([rmap[int(lab)], pmap[int(orig_pred[0])], float(iou)])
    return sorted(out)


def run_panoptica(matcher, gt, pred, lr, lp):
    ev = Panoptica_Evaluator(expected_input=InputType.SEMANTIC,
                             instance_approximator=ConnectedComponentsInstanceApproximator(),
                             instance_matcher=matcher, log_intermediate_steps=True)
    groups = ev.evaluate(pred, gt)
    assert list(groups) == ["ungrouped"], list(groups)
    r = groups["ungrouped"]
    rec = {"num_ref_instances": int(r.n_ref_instances), "num_pred_instances": int(r.n_pred_instances),
           "tp": int(r.tp), "fp": int(r.fp), "fn": int(r.fn),
           "rq": float(r.rq), "sq": float(r.sq), "sq_dsc": float(r.sq_dsc),
           "pq": float(r.pq), "pq_dsc": float(r.pq_dsc)}
    rec["pairs"] = panoptica_pairs(r, gt, pred, lr, lp)
    return rec


def evaluate(gt, pred, where):
    gt = (gt != 0).astype(np.uint8)
    pred = (pred != 0).astype(np.uint8)
    assert gt.shape == pred.shape and gt.ndim == 3
    own, lr, lp, ties = own_eval(gt, pred)
    out = {}
    for name, m in matchers().items():
        rec = run_panoptica(m, gt, pred, lr, lp)
        mine = own[name]
        for k in ("num_ref_instances", "num_pred_instances", "tp", "fp", "fn"):
            assert rec[k] == mine[k], (where, name, k, rec[k], mine[k])
        for k in ("rq", "sq", "sq_dsc", "pq", "pq_dsc"):
            assert close(rec[k], mine[k]), (where, name, k, rec[k], mine[k])
        # pair identity may legitimately differ only where a component has several IoU >= 0.5 partners
        # (possible only at IoU exactly 0.5); then only the IoU multiset must agree.
        if not ties:
            assert [p[:2] for p in rec["pairs"]] == [p[:2] for p in mine["pairs"]], (where, name)
        assert all(close(a, b) for a, b in zip(sorted(p[2] for p in rec["pairs"]),
                                                 sorted(p[2] for p in mine["pairs"]))), (where, name)
        out[name] = {k: num(v) for k, v in rec.items() if k != "pairs"}
        out[name]["pairs"] = [[a, b, num(c)] for a, b, c in rec["pairs"]]
    return out, ties


def load(path):
    return np.asanyarray(nib.load(str(path)).dataobj)


def fmt(r):
    return (f"ref={r['num_ref_instances']} pred={r['num_pred_instances']} tp={r['tp']} fp={r['fp']} "
            f"fn={r['fn']} rq={r['rq'] if isinstance(r['rq'], str) else round(r['rq'], 4)} "
            f"pq={r['pq'] if isinstance(r['pq'], str) else round(r['pq'], 4)}")


def main():
    disable_citation_reminder()
    ensure_spine()
    suites, tied, differ = {}, [], []
    for suite, rel in SUITES:
        d = ROOT / rel
        cases = {}
        for gp in sorted((d / "gt").glob("*.nii.gz")):
            case = gp.name[: -len(".nii.gz")]
            g, p = load(gp), load(d / "pred" / gp.name)
            res, ties = evaluate(g, p, f"{suite}/{case}")
            if ties:
                tied.append(f"{suite}/{case}")
            if any(res["greedy"][k] != res["max-bipartite"][k] for k in KEYS + ["pairs"]):
                differ.append(f"{suite}/{case}")
            print(f"[{suite}] {case:28s} greedy: {fmt(res['greedy'])}"
                  + ("" if res["greedy"] == res["max-bipartite"] else f" | bipartite: {fmt(res['max-bipartite'])}"))
            if suite == "spine":
                per = {}
                vals = sorted((set(np.unique(g).tolist()) | set(np.unique(p).tolist())) - {0})
                for v in vals:
                    r, t = evaluate(g == v, p == v, f"{suite}/{case}/label {v}")
                    if t:
                        tied.append(f"{suite}/{case}/label {v}")
                    if any(r["greedy"][k] != r["max-bipartite"][k] for k in KEYS + ["pairs"]):
                        differ.append(f"{suite}/{case}/label {v}")
                    print(f"[{suite}]   label {v:<5d} greedy: {fmt(r['greedy'])}")
                    per[str(int(v))] = r
                res["per_label"] = per
            cases[case] = res
        suites[suite] = cases

    doc = {
        "panoptica_version": pkg_version("panoptica"),
        "made_by": "scripts/crosscheck_panoptica.py",
        "versions": {p: pkg_version(p) for p in ("panoptica", "connected-components-3d", "numpy", "scipy")},
        "evaluator": ("Panoptica_Evaluator(expected_input=InputType.SEMANTIC, "
                      "instance_approximator=ConnectedComponentsInstanceApproximator(), instance_matcher=<matcher>, "
                      "log_intermediate_steps=True); all else default (instance_metrics [DSC, IOU, ASSD, RVD], "
                      "global_metrics [DSC], default EdgeCaseHandler, no decision metric); "
                      "evaluate((pred != 0).astype(uint8), (gt != 0).astype(uint8))['ungrouped']"),
        "matchers": {
            "greedy": {"class": "NaiveThresholdMatching", "matching_metric": "IOU",
                       "matching_threshold": THRESHOLD, "allow_many_to_one": False, "strict_threshold": False,
                       "call": "NaiveThresholdMatching(matching_metric=Metric.IOU, matching_threshold=0.5)"},
            "max-bipartite": {"class": "MaxBipartiteMatching", "matching_metric": "IOU",
                              "matching_threshold": THRESHOLD, "strict_threshold": False,
                              "call": "MaxBipartiteMatching(matching_metric=Metric.IOU, matching_threshold=0.5)"},
        },
        "suite_dirs": {s: rel for s, rel in SUITES},
        "per_label": ("suites.spine.<case>.per_label.<L> holds the same two results for the binary masks "
                      "(gt == L, pred == L), for every label value L != 0 present in either map"),
        "pairs_format": ("[ref_label, pred_label, iou]: the matched pairs chosen by panoptica (from its "
                         "intermediate steps), iou = panoptica's per-instance IoU; labels are 26-connected "
                         "components numbered 1..N by first voxel in Fortran (i-fastest) order (the picai "
                         "fixtures' convention), not panoptica's internal cc3d numbering"),
        "non_finite": "nan is written as the string \"nan\" (rq/sq/sq_dsc/pq/pq_dsc when both maps are empty)",
        "greedy_vs_bipartite_differ": differ,
        "tie_cases": tied,
        "suites": suites,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "expected.json").write_text(dump_stable(doc, sort_keys=True))
    n = sum(len(c) for c in suites.values())
    print(f"wrote {OUT / 'expected.json'}: {n} cases; greedy != max-bipartite in {len(differ)}: {differ}; "
          f"cases with several IoU>=0.5 partners: {tied}")


if __name__ == "__main__":
    main()
