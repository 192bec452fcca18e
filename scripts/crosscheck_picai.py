#!/usr/bin/env python3
"""picai_eval 1.4.13 `evaluate_case` per-case counts with BOTH settings of
allow_unmatched_candidates_with_minimal_overlap.

Writes fixtures/picai/expected_crosscheck.json for the case folders
  fixtures/picai/picai_tests, fixtures/picai/sct, fixtures/picai/synthetic   ({gt,pred}/<case>.nii.gz)
  fixtures/panoptica/spine                                                    (suite "spine")

Each case is evaluated on binarised masks as
    evaluate_case(y_det=(pred != 0).astype(float32), y_true=(gt != 0).astype(int32),
                  allow_unmatched_candidates_with_minimal_overlap=<True|False>)
with everything else at picai's defaults (min_overlap=0.1, overlap_func='IoU').  True is picai's own
default; False is what fixtures/picai/<suite>/expected.json (scripts/make_picai_fixtures.py) uses.

Per case and setting: gt (GT lesions), pred (26-connected prediction components), tp, fp, fn and
ignored = pred - tp - fp, the candidates that are neither TP nor FP.  With allow=True those are the
candidates that reach IoU >= 0.1 with some GT lesion but lose the Hungarian assignment (picai drops
them silently); with allow=False ignored is always 0.

Why: lesioneval's `picai` preset follows picai's default, allow=True (`--unmatched-overlap ignore`),
while plain `--match iou:0.1` counts every unmatched candidate as an FP, as allow=False does; this
file gives both on the same fixtures, for the Rust tests and the docs.

Checks: the allow=False counts must equal the existing fixtures/picai/<suite>/expected.json counts
(gt, pred, tp, fp, fn) where that file exists, and both settings are recomputed by a small independent
re-implementation (scipy.ndimage.label 26-connectivity, IoU >= 0.1 as 10*|I| >= |U|, Hungarian on
1 + IoU) and asserted equal.

Run: python3 scripts/crosscheck_picai.py   (bootstraps .venv-scripts from scripts/requirements.txt)
"""
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _venv  # noqa: E402

_venv.ensure()

import json  # noqa: E402
from importlib.metadata import version as pkg_version  # noqa: E402

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402

from picai_eval.eval import evaluate_case  # noqa: E402

from _fixio import ANY_STRING, dump_stable  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "picai" / "expected_crosscheck.json"
SUITES = [  # (suite name, folder relative to the repo root, has an expected.json with allow=False counts)
    ("picai_tests", "fixtures/picai/picai_tests"),
    ("sct", "fixtures/picai/sct"),
    ("synthetic", "fixtures/picai/synthetic"),
    ("spine", "fixtures/panoptica/spine"),
]
SETTINGS = [("allow_unmatched=True", True), ("allow_unmatched=False", False)]
COUNTS = ["gt", "pred", "tp", "fp", "fn"]
STRUCT = np.ones((3, 3, 3), dtype=bool)


def picai(gt, pred, allow):
    y_list, *_ = evaluate_case(y_det=(pred != 0).astype(np.float32), y_true=(gt != 0).astype(np.int32),
                               allow_unmatched_candidates_with_minimal_overlap=allow)
    tp = sum(1 for l, c, _ in y_list if l == 1 and c > 0)
    fn = sum(1 for l, c, _ in y_list if l == 1 and c == 0)
    fp = sum(1 for l, c, _ in y_list if l == 0 and c > 0)
    assert len(y_list) == tp + fn + fp, "entry with is_lesion 0 and confidence 0?"
    npred = ndimage.label(pred != 0, structure=STRUCT)[1]  # picai's candidates: 26-connected components
    r = {"gt": tp + fn, "pred": int(npred), "tp": tp, "fp": fp, "fn": fn, "ignored": int(npred) - tp - fp}
    assert r["ignored"] >= 0 and (allow or r["ignored"] == 0), r
    return r


def own(gt, pred):
    """Both settings from our reading of picai's rules (see fixtures/picai/README.md)."""
    lg, ng = ndimage.label(gt != 0, structure=STRUCT)
    lp, npd = ndimage.label(pred != 0, structure=STRUCT)
    tp, qualifying = 0, 0
    if ng and npd:
        inter = np.zeros((ng + 1, npd + 1), dtype=np.int64)
        np.add.at(inter, (lg.ravel(), lp.ravel()), 1)
        sg = np.bincount(lg.ravel(), minlength=ng + 1)
        sp = np.bincount(lp.ravel(), minlength=npd + 1)
        i = inter[1:, 1:]
        u = sg[1:, None] + sp[None, 1:] - i
        ok = (i > 0) & (10 * i >= u)  # IoU >= 0.1 exactly
        w = np.where(ok, 1.0 + i / np.maximum(u, 1), 0.0)
        r, c = linear_sum_assignment(w, maximize=True)
        tp = int(np.count_nonzero(w[r, c] > 0))
        qualifying = int(np.count_nonzero(ok.any(axis=0)))  # candidates with IoU >= 0.1 to some GT lesion
    base = {"gt": int(ng), "pred": int(npd), "tp": tp, "fn": int(ng) - tp}
    return {
        True: {**base, "fp": int(npd) - qualifying, "ignored": qualifying - tp},
        False: {**base, "fp": int(npd) - tp, "ignored": 0},
    }


def load(path):
    return np.asanyarray(nib.load(str(path)).dataobj)


def main():
    runs = {name: {} for name, _ in SETTINGS}
    differ, checked = [], 0
    for suite, rel in SUITES:
        d = ROOT / rel
        exp_path = d / "expected.json"
        expected = json.loads(exp_path.read_text())["cases"] if exp_path.exists() else None
        for name, _ in SETTINGS:
            runs[name][suite] = {}
        for gp in sorted((d / "gt").glob("*.nii.gz")):
            case = gp.name[: -len(".nii.gz")]
            g = load(gp) != 0
            p = load(d / "pred" / gp.name) != 0
            mine = own(g, p)
            res = {}
            for name, allow in SETTINGS:
                r = picai(g, p, allow)
                assert r == mine[allow], (suite, case, name, r, mine[allow])
                runs[name][suite][case] = r
                res[allow] = r
            if expected is not None:
                e = expected[case]
                assert {k: res[False][k] for k in COUNTS} == {k: e[k] for k in COUNTS}, (suite, case, res[False], e)
                checked += 1
            if res[True] != res[False]:
                differ.append(f"{suite}/{case}")
            print(f"[{suite}] {case:28s} " + " | ".join(
                f"{name}: gt={r['gt']} pred={r['pred']} tp={r['tp']} fp={r['fp']} fn={r['fn']} ign={r['ignored']}"
                for name, r in ((n, res[a]) for n, a in SETTINGS)))
        if expected is not None:
            assert sorted(expected) == sorted(runs["allow_unmatched=False"][suite]), f"{suite}: case lists differ"

    doc = {
        "picai_eval_version": pkg_version("picai_eval"),
        "made_by": "scripts/crosscheck_picai.py",
        "call": ("evaluate_case(y_det=(pred != 0).astype(float32), y_true=(gt != 0).astype(int32), "
                 "allow_unmatched_candidates_with_minimal_overlap=<setting>); min_overlap=0.1, overlap_func='IoU' "
                 "(defaults)"),
        "fields": ("gt = GT lesions (26-connected), pred = 26-connected prediction components, tp/fp/fn from "
                   "y_list, ignored = pred - tp - fp (candidates with IoU >= 0.1 to some GT lesion that lost the "
                   "assignment; dropped by picai when allow_unmatched=True, always 0 when False)"),
        "suite_dirs": {s: rel for s, rel in SUITES},
        "settings_differ": differ,
        "runs": runs,
    }
    OUT.write_text(dump_stable(doc, sort_keys=True, strings=ANY_STRING))
    n = sum(len(c) for c in runs["allow_unmatched=False"].values())
    print(f"wrote {OUT}: {n} cases; allow=False matches expected.json in {checked} cases; "
          f"allow=True != allow=False in {len(differ)}: {differ}")


if __name__ == "__main__":
    main()
