#!/usr/bin/env python3
"""The `lesioneval infer` / `lesioneval run` example: a hand-made ONNX blob detector and
synthetic MRI-like volumes with bright lesions, needing no trained weights.

Writes
  examples/infer/blob_detector.onnx          opset 13, input "image" [N,1,D,H,W] float32,
                                             output "prob" [N,1,D,H,W] (dims are dim_params)
  examples/infer/imagesTs/case_XXX_0000.nii.gz   int16 images (nnU-Net names)
  examples/infer/labelsTs/case_XXX.nii.gz        uint8 lesion masks (same geometry)
  examples/infer/expected.json                   the lesion counts of the emulation below

The model (the "model design" constants below):
  Conv  "smoothed"  3-D gaussian, sigma SMOOTH_SIGMA, kernel SMOOTH_K^3, zero pads to keep size
  Conv  "dog"       difference of gaussians G(DOG_SIGMA_C) - G(DOG_SIGMA_S), each normalised to
                    sum 1 over DOG_K^3 (so the kernel sums to 0: flat regions give 0)
  Mul   by SCALE, Add BIAS (scalar initializers), Sigmoid -> "prob".
On z-scored images a bright blob of radius ~2.5-5 voxels gives p > 0.5 at its centre, flat
brain and background give sigmoid(BIAS).  Inside a window of a sliding-window run the
zero padding of the convolutions meets z-scored brain (~ +1.2), an artificial edge: the
centre-surround filter answers along window borders (most at window corners), which is
what overlapping windows with gaussian blending suppress.

After writing, the script runs its own numpy emulation of MONAI sliding-window inference
(scripts/_slidingwin.py, onnxruntime per window) and prints the lesion counts per
(overlap, blend) setting, the table in examples/infer/README.md.  `--check-sct` also runs
it on shared/data/sct/t2_fake_lesion.nii.gz.

Seeded; .nii.gz written with gzip mtime 0 and the .onnx from fixed protobuf content, so two
runs give byte-identical files.

Usage: python3 scripts/make_infer_example.py [--no-sweep] [--check-sct] [--out DIR]
       (bootstraps .venv-onnx from scripts/requirements-onnx.txt on first run)
"""
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _venv  # noqa: E402

_venv.ensure(venv=".venv-onnx", requirements="requirements-onnx.txt")

import argparse  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from _fixio import dump_stable, save_nifti  # noqa: E402
import _slidingwin as sw  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "examples" / "infer"
SCT = ROOT.parent / "shared" / "data" / "sct"

# ------------------------------------------------------------------ model design
SMOOTH_SIGMA = 0.7
SMOOTH_K = 3
DOG_SIGMA_C = 1.0
DOG_SIGMA_S = 3.0
DOG_K = 9
SCALE = 12.5
BIAS = -4.75

# ------------------------------------------------------------------ data design
SEED = 20250611
N_CASES = 5
SHAPE = (96, 96, 64)
SPACING = (1.0, 1.0, 1.2)
AFFINE = np.array([[SPACING[0], 0, 0, -SHAPE[0] / 2 * SPACING[0]],
                   [0, SPACING[1], 0, -SHAPE[1] / 2 * SPACING[1]],
                   [0, 0, SPACING[2], -SHAPE[2] / 2 * SPACING[2]],
                   [0, 0, 0, 1.0]])
BRAIN_AXES = (46.0, 47.0, 31.0)   # semi-axes in voxels
BRAIN_EDGE = 8.0                  # width (voxels) of the soft brain border
BRAIN_LEVEL = 100.0
BIAS_FIELD = 0.12                 # +- relative amplitude of the smooth bias field
NOISE = 4.0                       # sigma of the complex gaussian noise (Rician magnitude)
PSF_SIGMA = 0.7                   # blur before noise (partial volume)
LESIONS = (3, 12)                 # per case, inclusive
LESION_R = (2.5, 5.0)             # semi-axes in voxels; along k divided by 1.2 (the spacing)
LESION_CONTRAST = (40.0, 80.0)
LESION_ZONE = 0.65                # lesion centres within this fraction of the brain radii

SWEEP = [(0.0, "constant"), (0.25, "constant"), (0.5, "constant"), (0.25, "gaussian"), (0.5, "gaussian")]
PATCH = (48, 48, 48)
THRESHOLD = 0.5


def gauss_kernel(sigma, k):
    x = np.arange(k, dtype=np.float64) - (k - 1) / 2
    g = np.exp(-(x ** 2) / (2 * sigma * sigma))
    g3 = np.multiply.outer(np.multiply.outer(g, g), g)
    return g3 / g3.sum()


def model_kernels():
    smooth = gauss_kernel(SMOOTH_SIGMA, SMOOTH_K)
    dog = gauss_kernel(DOG_SIGMA_C, DOG_K) - gauss_kernel(DOG_SIGMA_S, DOG_K)
    return smooth.astype(np.float32), dog.astype(np.float32)


def build_model():
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    smooth, dog = model_kernels()
    inits = [
        numpy_helper.from_array(smooth[None, None], "smooth_w"),
        numpy_helper.from_array(dog[None, None], "dog_w"),
        numpy_helper.from_array(np.array(SCALE, dtype=np.float32), "scale"),
        numpy_helper.from_array(np.array(BIAS, dtype=np.float32), "bias"),
    ]

    def conv(name, x, w, k):
        p = (k - 1) // 2
        return helper.make_node("Conv", [x, w], [name], name=name, kernel_shape=[k, k, k],
                                pads=[p] * 6, strides=[1, 1, 1], dilations=[1, 1, 1], group=1)

    nodes = [
        conv("smoothed", "image", "smooth_w", SMOOTH_K),
        conv("dog", "smoothed", "dog_w", DOG_K),
        helper.make_node("Mul", ["dog", "scale"], ["scaled"], name="scaled"),
        helper.make_node("Add", ["scaled", "bias"], ["logit"], name="logit"),
        helper.make_node("Sigmoid", ["logit"], ["prob"], name="prob"),
    ]
    dims = ["N", 1, "D", "H", "W"]
    graph = helper.make_graph(
        nodes, "blob_detector",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, dims)],
        initializer=inits)
    model = helper.make_model(graph, producer_name="lesioneval make_infer_example.py",
                              producer_version="1", opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    model.doc_string = (
        f"Hand-made bright-blob detector (no training): gaussian smoothing sigma {SMOOTH_SIGMA} "
        f"({SMOOTH_K}^3), difference of gaussians sigma {DOG_SIGMA_C} - {DOG_SIGMA_S} ({DOG_K}^3, "
        f"zero sum), logit = {SCALE} * dog + ({BIAS}), sigmoid. Expects z-scored input.")
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString(deterministic=True)


# ------------------------------------------------------------------ synthetic data
def blur(x, sigma):
    """Separable gaussian blur (zero outside), numpy only."""
    r = int(np.ceil(3 * sigma))
    g = np.exp(-(np.arange(-r, r + 1) ** 2) / (2 * sigma * sigma))
    g /= g.sum()
    for ax in range(x.ndim):
        pad = [(0, 0)] * x.ndim
        pad[ax] = (r, r)
        xp = np.pad(x, pad)
        out = np.zeros_like(x)
        n = x.shape[ax]
        for i, gi in enumerate(g):
            out += gi * np.take(xp, np.arange(i, i + n), axis=ax)
        x = out
    return x


def make_case(rng):
    grid = np.indices(SHAPE, dtype=np.float64)
    centre = (np.array(SHAPE) - 1) / 2 + rng.uniform(-2, 2, 3)
    d = [(grid[a] - centre[a]) / BRAIN_AXES[a] for a in range(3)]
    rho = np.sqrt(d[0] ** 2 + d[1] ** 2 + d[2] ** 2)
    mean_axis = float(np.mean(BRAIN_AXES))
    brain = 1.0 / (1.0 + np.exp((rho - 1.0) * mean_axis / (BRAIN_EDGE / 4)))
    # smooth multiplicative bias field: a few low-frequency cosines
    field = np.zeros(SHAPE)
    for _ in range(4):
        k = rng.uniform(0.5, 1.5, 3) * 2 * np.pi / np.array(SHAPE) * rng.choice([-1, 1], 3)
        field += np.cos(sum(k[a] * grid[a] for a in range(3)) + rng.uniform(0, 2 * np.pi))
    field = 1.0 + BIAS_FIELD * field / 2.0
    signal = BRAIN_LEVEL * brain * field
    gt = np.zeros(SHAPE, dtype=bool)
    n_les = int(rng.integers(LESIONS[0], LESIONS[1] + 1))
    placed = 0
    tries = 0
    while placed < n_les and tries < 5000:
        tries += 1
        r = np.array([rng.uniform(*LESION_R), rng.uniform(*LESION_R), 0.0])
        r[2] = rng.uniform(*LESION_R) / 1.2
        c = centre + rng.uniform(-1, 1, 3) * np.array(BRAIN_AXES) * LESION_ZONE
        if np.sqrt(np.sum(((c - centre) / BRAIN_AXES) ** 2)) > LESION_ZONE:
            continue
        th = rng.uniform(0, np.pi)
        dx, dy, dz = grid[0] - c[0], grid[1] - c[1], grid[2] - c[2]
        u = np.cos(th) * dx + np.sin(th) * dy
        v = -np.sin(th) * dx + np.cos(th) * dy
        m = (u / r[0]) ** 2 + (v / r[1]) ** 2 + (dz / r[2]) ** 2 <= 1
        if m.sum() < 8:
            continue
        # at least 4 voxels from every lesion already there
        lo = np.maximum(np.argwhere(m).min(0) - 4, 0)
        hi = np.argwhere(m).max(0) + 5
        if gt[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].any():
            continue
        gt |= m
        signal = signal + rng.uniform(*LESION_CONTRAST) * m   # not scaled by the bias field
        placed += 1
    signal = blur(signal, PSF_SIGMA)
    re = signal + rng.normal(0, NOISE, SHAPE)
    im = rng.normal(0, NOISE, SHAPE)
    image = np.sqrt(re * re + im * im)
    return np.round(image).astype(np.int16), gt.astype(np.uint8)


def write_data():
    if OUT.exists():
        for sub in ("imagesTs", "labelsTs"):
            shutil.rmtree(OUT / sub, ignore_errors=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "blob_detector.onnx").write_bytes(build_model())
    cases = []
    for i in range(1, N_CASES + 1):
        rng = np.random.default_rng([SEED, i])
        img, gt = make_case(rng)
        cid = f"case_{i:03d}"
        save_nifti(OUT / "imagesTs" / f"{cid}_0000.nii.gz", img, AFFINE)
        save_nifti(OUT / "labelsTs" / f"{cid}.nii.gz", gt, AFFINE)
        cases.append((cid, img, gt))
    return cases


# ------------------------------------------------------------------ emulation
def session(path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def predict_fn(sess):
    def predict(x):
        return sess.run(["prob"], {"image": x})[0]
    return predict


def sweep(cases, sess, patch, settings, full=True):
    """Lesion counts summed over `cases` for each (overlap, blend) at `patch`, plus one
    whole-image window (the model on the unsplit image) if `full`."""
    rows = []
    predict = predict_fn(sess)
    configs = [(o, b, tuple(patch)) for o, b in settings]
    if full:
        configs.append((0.0, "constant", None))
    for overlap, blend, p in configs:
        tot = dict(windows=0)
        for _cid, img, gt in cases:
            x = sw.zscore(img)
            pp = p if p is not None else tuple(img.shape)
            prob = sw.sliding_window(x, pp, overlap, blend, predict)[0]
            counts = sw.lesion_counts(prob > THRESHOLD, gt > 0)
            for k, v in counts.items():
                tot[k] = tot.get(k, 0) + v
            padded = [max(s, q) for s, q in zip(img.shape, pp)]
            tot["windows"] += len(sw.windows(padded, pp, overlap))
        rows.append(dict(patch=list(p) if p is not None else "whole", overlap=overlap,
                         blend=blend if p is not None else "-", **tot))
    return rows


def print_table(rows, out=sys.stdout):
    print("| patch | overlap | blend | windows | predicted | touching GT | FP (no GT voxel) | "
          "GT found | TP | FP | FN |", file=out)
    print("| --- | --: | --- | --: | --: | --: | --: | --: | --: | --: | --: |", file=out)
    for r in rows:
        ps = "x".join(map(str, r["patch"])) if r["patch"] != "whole" else "whole image"
        print(f"| {ps} | {r['overlap']} | {r['blend']} | {r['windows']} | {r['pred']} | "
              f"{r['touch']} | {r['fp_any']} | {r['gt_found']}/{r['gt']} | {r['tp']} | {r['fp']} | "
              f"{r['fn']} |", file=out)


def check_sct(sess):
    import nibabel as nib

    img = np.asanyarray(nib.load(str(SCT / "t2_fake_lesion.nii.gz")).dataobj)
    gt = np.asanyarray(nib.load(str(SCT / "t2_fake_lesion_lesion_seg.nii.gz")).dataobj)
    print(f"\nshared/data/sct/t2_fake_lesion.nii.gz: shape {img.shape}, dtype {img.dtype}")
    patch = (48, 48, 32)   # last axis (29) shorter than the patch: zero-padded to 32
    rows = sweep([("t2_fake_lesion", img, gt)], sess, patch, SWEEP)
    print_table(rows)
    return rows


def main():
    global OUT
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--no-sweep", action="store_true",
                    help="only write the files (no emulation, expected.json left as it is)")
    ap.add_argument("--check-sct", action="store_true", help="also run on the SCT T2 image")
    ap.add_argument("--out", type=Path, default=ROOT / "examples" / "infer", help="output folder (default examples/infer)")
    args = ap.parse_args()
    OUT = args.out.resolve()
    t0 = time.perf_counter()
    cases = write_data()
    size = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {OUT}: {N_CASES} cases {SHAPE}, {size / 1e6:.2f} MB "
          f"({time.perf_counter() - t0:.1f} s)")
    if args.no_sweep and not args.check_sct:
        return
    sess = session(OUT / "blob_detector.onnx")
    if not args.no_sweep:
        rows = sweep(cases, sess, PATCH, SWEEP)
        print_table(rows)
        expected = dict(
            note="lesion counts from scripts/make_infer_example.py's numpy sliding window "
                 "(onnxruntime per window), threshold 0.5, 26-connectivity; tp/fp/fn: IoU >= 0.1 "
                 "one-to-one; touch/fp_any/gt_found: any shared voxel",
            threshold=THRESHOLD, rows=rows)
        (OUT / "expected.json").write_text(dump_stable(expected))
    if args.check_sct:
        check_sct(sess)


if __name__ == "__main__":
    main()
