#!/usr/bin/env python3
"""Benchmark `lesioneval infer` (CPU and GPU) against onnxruntime on one model and one volume.

In one run, on a seeded random smooth volume written as NIfTI into a temporary folder:
  * onnxruntime (CPU execution provider, all cores unless --threads) driven by the numpy
    MONAI-style sliding window of scripts/_slidingwin.py, same patch / overlap / blend;
  * `lesioneval infer --device cpu` and `--device gpu` (the binary from --bin), each as a
    whole process (read NIfTI, infer, write the probability map).
Every variant runs --repeat times; the table gives medians and ort/ours ratios.  Our
probabilities are checked against onnxruntime's (max |difference| <= --tol, default 1e-4).
A GPU run that fails with "no GPU adapter" is reported as skipped, not as a failure.

Models: --model keras | nnunet | blob | PATH
  keras   fixtures/onnx/models/keras_unet.onnx   NDHWC input, static 32^3, 2-class softmax
          inside (foreground = channel 1 of the last axis); default patch 32,32,32
  nnunet  fixtures/onnx/models/nnunet_like.onnx  NCDHW, 1-channel logits: sigmoid after
          blending; default patch 64,64,64
  blob    examples/infer/blob_detector.onnx      NCDHW, sigmoid inside; default patch 48,48,48
  PATH    any model: NDHWC if the input's last dim is 1 and its dim 1 is not; outputs are
          probabilities if the last node is Softmax/Sigmoid, else sigmoid (1 channel) or
          softmax (>= 2) after blending; foreground = channel 1 if >= 2 channels, else 0

Timings: "ort compute" = z-score + sliding window + activation on the array in memory;
"ort end-to-end" = session creation + NIfTI read + compute + .nii.gz write (what a
`lesioneval infer` process does); ratios are ort end-to-end / ours.  lesioneval picks
its own thread count; pass e.g. --ours-arg=--threads=4 to pin it.

Usage: python3 scripts/bench_infer.py [--model nnunet] [--shape 128,128,96] [--repeat 3]
         [--patch 64,64,64] [--overlap 0.5] [--blend gaussian] [--threads N]
         [--bin target/release/lesioneval] [--json results.json]
       (bootstraps .venv-onnx from scripts/requirements-onnx.txt on first run)
"""
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _venv  # noqa: E402

_venv.ensure(venv=".venv-onnx", requirements="requirements-onnx.txt")

import argparse  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402

import _slidingwin as sw  # noqa: E402
from _fixio import dump_stable, num, save_nifti  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODELS = {
    "keras": (ROOT / "fixtures/onnx/models/keras_unet.onnx", (32, 32, 32)),
    "nnunet": (ROOT / "fixtures/onnx/models/nnunet_like.onnx", (64, 64, 64)),
    "blob": (ROOT / "examples/infer/blob_detector.onnx", (48, 48, 48)),
}
CASE = "bench"


def triple(text):
    v = tuple(int(x) for x in text.split(","))
    if len(v) != 3 or min(v) < 1:
        raise argparse.ArgumentTypeError(f"expected three positive integers a,b,c, got {text!r}")
    return v


# ------------------------------------------------------------------ model description
class ModelInfo:
    def __init__(self, path):
        m = onnx.load(str(path), load_external_data=False)
        init_names = {i.name for i in m.graph.initializer}
        inputs = [i for i in m.graph.input if i.name not in init_names]
        inp = inputs[0]
        dims = [d.dim_value if d.HasField("dim_value") else None for d in inp.type.tensor_type.shape.dim]
        if len(dims) != 5:
            raise SystemExit(f"{path}: input {inp.name!r} has rank {len(dims)}, expected 5")
        self.input = inp.name
        self.output = m.graph.output[0].name
        self.ndhwc = dims[4] == 1 and dims[1] != 1
        self.static = dims[1:4] if self.ndhwc else dims[2:5]
        self.last_op = m.graph.node[-1].op_type
        self.probs_inside = self.last_op in ("Softmax", "Sigmoid")

    def describe(self):
        return (f"input {self.input} ({'NDHWC' if self.ndhwc else 'NCDHW'}), output {self.output}, "
                f"last op {self.last_op}")


def make_session(path, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def predictor(sess, info):
    def predict(x):  # x: [N, 1, D, H, W]
        if info.ndhwc:
            y = sess.run([info.output], {info.input: np.ascontiguousarray(x[:, 0, ..., None])})[0]
            return np.moveaxis(y, -1, 1)
        return sess.run([info.output], {info.input: x})[0]
    return predict


def foreground(out, info):
    """out: blended [C, D, H, W] -> foreground probability [D, H, W] float32."""
    c = out.shape[0]
    if not info.probs_inside:
        if c == 1:
            out = 1.0 / (1.0 + np.exp(-out.astype(np.float64)))
        else:
            e = np.exp(out - out.max(axis=0, keepdims=True))
            out = e / e.sum(axis=0, keepdims=True)
    return np.asarray(out[1] if c >= 2 else out[0], dtype=np.float32)


def ort_infer(sess, info, img, args):
    x = sw.zscore(img)
    out = sw.sliding_window(x, args.patch, args.overlap, args.blend, predictor(sess, info),
                            batch=args.batch)
    return foreground(out, info)


# ------------------------------------------------------------------ test volume
def smooth(x, sigma):
    r = int(np.ceil(3 * sigma))
    g = np.exp(-(np.arange(-r, r + 1) ** 2) / (2.0 * sigma * sigma))
    g /= g.sum()
    for ax in range(x.ndim):
        pad = [(0, 0)] * x.ndim
        pad[ax] = (r, r)
        xp = np.pad(x, pad, mode="reflect")
        out = np.zeros_like(x)
        for i, gi in enumerate(g):
            out += gi * np.take(xp, np.arange(i, i + x.shape[ax]), axis=ax)
        x = out
    return x


def make_volume(shape, seed):
    """Smooth noise around 100 plus a few bright gaussian blobs, float32."""
    rng = np.random.default_rng(seed)
    x = smooth(rng.normal(0.0, 1.0, shape), 2.0)
    x = 100.0 + 15.0 * x / x.std()
    grid = np.indices(shape, dtype=np.float64)
    for _ in range(12):
        c = rng.uniform(0.1, 0.9, 3) * np.array(shape)
        r = rng.uniform(2.0, 5.0)
        d2 = sum((grid[a] - c[a]) ** 2 for a in range(3))
        x += rng.uniform(40, 80) * np.exp(-d2 / (2 * r * r))
    return x.astype(np.float32)


# ------------------------------------------------------------------ runs
def run_ours(args, model, images, out, device):
    if out.exists():
        shutil.rmtree(out)
    cmd = [str(args.bin), "infer", "--model", str(model), "--images", str(images), "--out", str(out),
           "--patch", ",".join(map(str, args.patch)), "--overlap", str(args.overlap),
           "--blend", args.blend, "--device", device, *args.ours_arg]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    return dt, p, cmd


def read_output(out):
    files = sorted(out.glob("*.nii.gz")) + sorted(out.glob("*.nii"))
    if len(files) != 1:
        raise RuntimeError(f"expected one probability map in {out}, found {[f.name for f in files]}")
    im = nib.load(str(files[0]))
    return np.asarray(im.get_fdata(dtype=np.float32)), im.affine, files[0].name


def median(v):
    return statistics.median(v) if v else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="nnunet", help="keras | nnunet | blob | PATH (default nnunet)")
    ap.add_argument("--shape", type=triple, default=(128, 128, 96))
    ap.add_argument("--patch", type=triple, help="default: 32^3 keras, 64^3 nnunet, 48^3 blob, 64^3 PATH")
    ap.add_argument("--overlap", type=float, default=0.5)
    ap.add_argument("--blend", choices=["gaussian", "constant"], default="gaussian")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0,
                    help="onnxruntime intra-op threads (0 = onnxruntime's default: all cores)")
    ap.add_argument("--batch", type=int, default=1, help="windows per onnxruntime call (default 1)")
    ap.add_argument("--bin", type=Path, default=ROOT / "target/release/lesioneval")
    ap.add_argument("--devices", default="cpu,gpu", help="lesioneval devices to run (default cpu,gpu)")
    ap.add_argument("--ours-arg", action="append", default=[],
                    help="extra argument passed to lesioneval infer (repeatable, e.g. --ours-arg=--timings)")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=20250612)
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()

    if args.model in MODELS:
        model, default_patch = MODELS[args.model]
    else:
        model, default_patch = Path(args.model), (64, 64, 64)
    model = model.resolve()
    if not model.exists():
        raise SystemExit(f"model {model} not found")
    args.patch = args.patch or default_patch
    info = ModelInfo(model)
    if all(s is not None for s in info.static) and tuple(info.static) != tuple(args.patch):
        raise SystemExit(f"{model.name} has a static patch {tuple(info.static)}; --patch {args.patch} "
                         f"does not fit")
    devices = [d for d in args.devices.split(",") if d]
    if devices and not args.bin.exists():
        raise SystemExit(f"{args.bin} not found (build it with `cargo build --release`, or --devices '')")

    tmp = Path(tempfile.mkdtemp(prefix="bench_infer_"))
    images = tmp / "images"
    images.mkdir()
    vol = make_volume(args.shape, args.seed)
    affine = np.diag([0.8, 0.8, 1.0, 1.0])
    save_nifti(images / f"{CASE}_0000.nii.gz", vol, affine)
    padded = [max(s, p) for s, p in zip(args.shape, args.patch)]
    n_windows = len(sw.windows(padded, args.patch, args.overlap))

    print(f"model {model.name}: {info.describe()}")
    print(f"volume {args.shape} float32, patch {args.patch}, overlap {args.overlap}, blend {args.blend}, "
          f"{n_windows} windows; onnxruntime {ort.__version__} threads "
          f"{args.threads or 'default'}, batch {args.batch}; {os.cpu_count()} CPUs")

    results = dict(model=str(model.relative_to(ROOT)) if model.is_relative_to(ROOT) else str(model),
                   shape=list(args.shape), patch=list(args.patch), overlap=args.overlap,
                   blend=args.blend, windows=n_windows, repeat=args.repeat, threads=args.threads,
                   batch=args.batch, onnxruntime=ort.__version__, cpus=os.cpu_count(),
                   machine=platform.machine(), tol=args.tol, runs={})

    # onnxruntime reference
    e2e, comp, sess_t = [], [], []
    ref = None
    for i in range(args.repeat):
        t0 = time.perf_counter()
        sess = make_session(model, args.threads)
        t1 = time.perf_counter()
        im = nib.load(str(images / f"{CASE}_0000.nii.gz"))
        img = np.asanyarray(im.dataobj)
        t2 = time.perf_counter()
        prob = ort_infer(sess, info, img, args)
        t3 = time.perf_counter()
        save_nifti(tmp / "ort_prob.nii.gz", prob, im.affine)
        t4 = time.perf_counter()
        sess_t.append(t1 - t0)
        comp.append(t3 - t2)
        e2e.append(t4 - t0)
        if ref is None:
            ref = prob
        print(f"  ort run {i + 1}: end-to-end {t4 - t0:.3f} s (session {t1 - t0:.3f}, compute {t3 - t2:.3f})",
              flush=True)
    results["runs"]["ort"] = dict(status="ok", seconds=[num(x) for x in e2e],
                                  compute=[num(x) for x in comp], session=[num(x) for x in sess_t],
                                  median=num(median(e2e)), median_compute=num(median(comp)))
    results["ort_prob"] = dict(min=num(ref.min()), max=num(ref.max()), mean=num(ref.mean()),
                               above_half=int((ref > 0.5).sum()))

    failed = False
    for dev in devices:
        name = f"lesioneval {dev}"
        times, diff, status, note = [], None, "ok", ""
        for i in range(args.repeat):
            dt, p, cmd = run_ours(args, model, images, tmp / f"out_{dev}", dev)
            if p.returncode != 0:
                msg = (p.stderr.strip() or p.stdout.strip()).splitlines()
                last = msg[-1] if msg else f"exit {p.returncode}"
                if dev == "gpu" and "no GPU adapter" in (p.stderr + p.stdout):
                    status, note = "skipped", last
                else:
                    status, note = "failed", f"exit {p.returncode}: {last}"
                    failed = True
                    print("  $ " + " ".join(cmd), file=sys.stderr)
                    print(p.stderr, file=sys.stderr)
                break
            times.append(dt)
            if i == 0:
                try:
                    ours, aff, fname = read_output(tmp / f"out_{dev}")
                    if ours.shape != ref.shape:
                        raise RuntimeError(f"{fname}: shape {ours.shape}, expected {ref.shape}")
                    if not np.allclose(aff, affine, atol=1e-5):
                        raise RuntimeError(f"{fname}: affine differs from the input's")
                    diff = float(np.max(np.abs(ours.astype(np.float64) - ref.astype(np.float64))))
                    if not diff <= args.tol:
                        status, note = "mismatch", f"max |diff| {diff:.3g} > {args.tol:g}"
                        failed = True
                except Exception as e:  # noqa: BLE001
                    status, note = "failed", str(e)
                    failed = True
                    break
            print(f"  {name} run {i + 1}: {dt:.3f} s", flush=True)
        print(f"  {name}: {status}{' (' + note + ')' if note else ''}"
              + (f", max |diff| vs ort {diff:.3g}" if diff is not None else ""), flush=True)
        results["runs"][name] = dict(status=status, note=note, seconds=[num(x) for x in times],
                                     median=num(median(times)) if times else None,
                                     max_abs_diff=num(diff) if diff is not None else None)

    ort_med = median(e2e)
    print()
    print("| run | status | median s | runs | ort end-to-end / ours | max abs diff vs ort |")
    print("| --- | --- | --: | --: | --: | --: |")
    print(f"| onnxruntime compute only (numpy sliding window) | ok | {median(comp):.3f} | {len(comp)} | "
          f"- | - |")
    print(f"| onnxruntime end-to-end | ok | {ort_med:.3f} | {len(e2e)} | 1.00 | 0 |")
    for dev in devices:
        r = results["runs"][f"lesioneval {dev}"]
        med = r["median"]
        ratio = f"{ort_med / med:.2f}" if med else "-"
        r["ratio"] = num(ort_med / med) if med else None
        d = f"{r['max_abs_diff']:.2e}" if r["max_abs_diff"] is not None else "-"
        st = r["status"] + (f": {r['note']}" if r["note"] else "")
        print(f"| lesioneval infer --device {dev} | {st} | {med:.3f} | {len(r['seconds'])} | {ratio} | {d} |"
              if med else f"| lesioneval infer --device {dev} | {st} | - | 0 | - | {d} |")

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(dump_stable(results))
        print(f"\nwrote {args.json}")
    if args.keep:
        print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
