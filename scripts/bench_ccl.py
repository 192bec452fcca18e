#!/usr/bin/env python3
"""Benchmark lesioneval's connected-component labelling against cc3d and scipy.

Usage:
  python3 scripts/bench_ccl.py --bin target/release/lesioneval [--repeat 11]
      [--sizes 192x192x160,512x512x512] [--threads 1[,2,...]] [--seed 12345] [--keep DIR]
      [--no-scipy] [--uncompressed] [--recycle] [--rounds 1] [--warmup 0]
      [--kinds sparse,random,zero,one]

For every generated volume and connectivity 6/18/26 it times (median of --repeat runs)
  * cc3d.connected_components (single-threaded, out_dtype=uint32, Fortran-ordered input)
  * scipy.ndimage.label with generate_binary_structure(3, 1|2|3)
  * `BIN label IN --out OUT.nii.gz --connectivity C --timings --repeat N`
    (env RAYON_NUM_THREADS=<threads>, once per listed thread count), parsing
    `label=<ms>ms` from its stderr line `timing read=..ms label=..ms stats=..ms write=..ms`
and checks that lesioneval's labels are identical to cc3d's (for every thread count).
--recycle also times `BIN label ... --repeat N --recycle` at the first thread count: each
repetition writes into the previous one's label volume, as `score`/`compare` do from one
case of a folder to the next (the plain runs allocate a fresh volume every time, like
cc3d); its labels are checked too.
Prints a Markdown table; with several thread counts the ratios are against the first,
and a "first/last threads" column gives lesioneval's own speed-up.
--rounds R repeats the whole comparison of each volume and connectivity R times, the
tools taking turns, and reports medians over the rounds, with each ratio the median of
the per-round ratios: on a shared machine whose speed drifts, times taken minutes apart
(all cc3d runs, then all 1-thread runs, then all 2-thread runs) can differ by 1.5x, and a
ratio of two such times says more about the drift than about the tools.
--warmup W makes W untimed calls of each tool before its timed ones. cc3d and scipy run
in this Python process, whose allocator already holds the memory of earlier volumes;
each lesioneval run is a new process, whose first four label volumes are fresh memory from
the kernel (glibc: two mmaps, then two heap extensions) when they are under 32 MiB
(`label --warmup W` skips them). With W >= 4, or enough repetitions that the median is
past them (--repeat 21), both tools are timed in their steady state, as in a loop over
many cases. Volumes of 32 MiB or more are fresh kernel memory at every call, for both.
--no-scipy skips scipy (slow); --uncompressed writes .nii instead of .nii.gz (faster,
for machines with disk to spare).
Exit status 1 if any labels differ (2 if lesioneval fails to run).
Volumes: "sparse blobs" (random balls, ~1.3 % foreground) for each size; for 512^3
sizes also "random p=0.5", "all-zero", "all-one" (--kinds picks some of them; each
volume is generated from the same seed whichever others are picked).
"""
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # keep scripts/ free of __pycache__
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _venv  # noqa: E402

_venv.ensure()

import argparse  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import cc3d  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

from _fixio import save_nifti  # noqa: E402

CONNS = (6, 18, 26)
RANK = {6: 1, 18: 2, 26: 3}
LABEL_RE = re.compile(r"label=([0-9.]+)ms")
EACH_RE = re.compile(r"label_each_ms=([0-9.,]+)")


def parse_size(s):
    parts = [int(x) for x in s.lower().split("x")]
    if len(parts) != 3 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"bad size {s!r}, expected e.g. 192x192x160")
    return tuple(parts)


def sparse_blobs(shape, seed, target=0.013):
    """Random balls until ~target foreground fraction (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    m = np.zeros(shape, dtype=bool)
    total = m.size
    rmax = max(2.0, min(shape) / 24.0)
    count = 0
    while count < target * total:
        r = float(rng.uniform(1.0, rmax))
        c = [float(rng.uniform(0, s - 1)) for s in shape]
        lo = [max(0, int(np.floor(ci - r))) for ci in c]
        hi = [min(s, int(np.ceil(ci + r)) + 1) for ci, s in zip(c, shape)]
        sub = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi))]
        d2 = sum((g - ci) ** 2 for g, ci in zip(sub, c))
        view = m[tuple(slice(a, b) for a, b in zip(lo, hi))]
        before = int(view.sum())
        view |= d2 <= r * r
        count += int(view.sum()) - before
    return np.asfortranarray(m.astype(np.uint8))


KINDS = ("sparse", "random", "zero", "one")


def volumes(sizes, seed, kinds=KINDS):
    for i, shape in enumerate(sizes):
        tag = "x".join(map(str, shape))
        if "sparse" in kinds:
            yield f"sparse blobs {tag}", sparse_blobs(shape, seed + i)
        if shape == (512, 512, 512):
            if "random" in kinds:
                rng = np.random.default_rng(seed + 100 + i)
                yield f"random p=0.5 {tag}", np.asfortranarray((rng.random(shape, dtype=np.float32) < 0.5).astype(np.uint8))
            if "zero" in kinds:
                yield f"all-zero {tag}", np.zeros(shape, dtype=np.uint8, order="F")
            if "one" in kinds:
                yield f"all-one {tag}", np.ones(shape, dtype=np.uint8, order="F")


def median_ms(fn, repeat, warmup=0):
    for _ in range(warmup):
        fn()
    ts = []
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts), out


def summary(per_round):
    """Median over rounds of each time: (cc3d, scipy or None, [lesioneval per thread count], reused or None)."""
    med = statistics.median
    t_sp = None if per_round[0][1] is None else med(r[1] for r in per_round)
    t_rc = None if per_round[0][3] is None else med(r[3] for r in per_round)
    t_le = [med(r[2][k] for r in per_round) for k in range(len(per_round[0][2]))]
    return med(r[0] for r in per_round), t_sp, t_le, t_rc


def round_ratio(per_round, num, den):
    """Median over rounds of num(round) / den(round), formatted; "-" when num is None."""
    vals = []
    for r in per_round:
        a, b = num(r), den(r)
        if a is None:
            return "-"
        vals.append(a / b if b > 0 else float("inf"))
    return f"{statistics.median(vals):.2f}"


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="path to the lesioneval binary")
    ap.add_argument("--repeat", type=int, default=11)
    ap.add_argument("--sizes", default="192x192x160,512x512x512",
                    type=lambda s: [parse_size(x) for x in s.split(",") if x])
    ap.add_argument("--threads", default="1", type=lambda s: [int(x) for x in s.split(",") if x],
                    help="RAYON_NUM_THREADS for lesioneval; a comma list runs each")
    ap.add_argument("--no-scipy", action="store_true", help="do not time scipy.ndimage.label")
    ap.add_argument("--uncompressed", action="store_true", help="write .nii files instead of .nii.gz")
    ap.add_argument("--recycle", action="store_true",
                    help="also time lesioneval reusing its label volume across repetitions (first thread count)")
    ap.add_argument("--warmup", type=int, default=0,
                    help="untimed calls of each tool before its timed ones (lesioneval: label --warmup)")
    ap.add_argument("--kinds", default=",".join(KINDS),
                    type=lambda s: [x for x in s.split(",") if x],
                    help=f"which volumes to run, a comma list of {', '.join(KINDS)} (default: all)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="interleaved rounds per volume and connectivity (cc3d, scipy, lesioneval at each "
                         "thread count, in turn); times are medians over rounds, ratios medians of "
                         "per-round ratios")
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--keep", default=None, help="keep the written volumes/outputs in this directory")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    if args.warmup < 0:
        ap.error("--warmup must be >= 0")
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    if not args.kinds or any(k not in KINDS for k in args.kinds):
        ap.error(f"--kinds must list some of {', '.join(KINDS)}")
    if not args.threads or min(args.threads) < 1:
        ap.error("--threads must list counts >= 1")
    binary = os.path.abspath(args.bin)
    if not os.access(binary, os.X_OK):
        ap.error(f"not an executable: {binary}")

    tmpctx = tempfile.TemporaryDirectory(prefix="bench_ccl_") if args.keep is None else None
    tmp = Path(args.keep or tmpctx.name)
    tmp.mkdir(parents=True, exist_ok=True)

    rows, all_same, cmd_example = [], True, None
    for vi, (name, vol) in enumerate(volumes(args.sizes, args.seed, args.kinds)):
        fg = float(vol.mean()) * 100
        ext = ".nii" if args.uncompressed else ".nii.gz"
        inp = tmp / f"vol{vi}{ext}"
        if args.uncompressed:
            nib.save(nib.Nifti1Image(vol, np.eye(4)), str(inp))
        else:
            save_nifti(inp, vol, np.eye(4))
        print(f"# {name}: {fg:.2f}% foreground", file=sys.stderr, flush=True)
        for c in CONNS:
            # Round r times cc3d, scipy and lesioneval at every thread count one after
            # the other, so slow drift of a shared machine hits all of them alike; the
            # ratios are medians of the per-round ratios. Labels are checked in round 0.
            per_round = []  # (t_cc, t_sp, [t_le per thread count], t_rc)
            same = True
            for rnd in range(args.rounds):
                t_cc, ref = median_ms(lambda: cc3d.connected_components(vol, connectivity=c, out_dtype=np.uint32),
                                      args.repeat, args.warmup)
                t_sp = None
                if not args.no_scipy:
                    st = ndimage.generate_binary_structure(3, RANK[c])
                    t_sp, _ = median_ms(lambda: ndimage.label(vol, structure=st), args.repeat, args.warmup)
                t_le, t_rc = [], None
                runs = [(th, False) for th in args.threads] + ([(args.threads[0], True)] if args.recycle else [])
                for th, recycle in runs:
                    out = tmp / f"vol{vi}_c{c}_t{th}{'_rc' if recycle else ''}{ext}"
                    cmd = [binary, "label", str(inp), "--out", str(out), "--connectivity", str(c),
                           "--timings", "--repeat", str(args.repeat), "--device", "cpu"]
                    cmd += ["--recycle"] if recycle else []
                    cmd += ["--warmup", str(args.warmup)] if args.warmup else []
                    cmd_example = cmd_example or cmd
                    env = dict(os.environ, RAYON_NUM_THREADS=str(th))
                    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
                    if p.returncode != 0:
                        print(f"lesioneval failed ({p.returncode}): {shlex.join(cmd)}\n{p.stderr}", file=sys.stderr)
                        sys.exit(2)
                    m = LABEL_RE.search(p.stderr)
                    if not m:
                        print(f"no 'label=<ms>ms' in stderr of {shlex.join(cmd)}:\n{p.stderr}", file=sys.stderr)
                        sys.exit(2)
                    each = EACH_RE.search(p.stderr)
                    if each:  # every repetition, in run order, for the log
                        print(f"#     {th} thr{' reused' if recycle else ''}, round {rnd}: {each.group(1)}",
                              file=sys.stderr, flush=True)
                    if recycle:
                        t_rc = float(m.group(1))
                    else:
                        t_le.append(float(m.group(1)))
                    if rnd == 0:
                        got = np.asanyarray(nib.load(str(out)).dataobj)
                        # lesioneval stores labels in the smallest unsigned type that holds N; compare values.
                        same &= bool(got.shape == ref.shape and np.array_equal(got.astype(np.uint32), ref))
                        del got
                    if args.keep is None:
                        out.unlink(missing_ok=True)
                per_round.append((t_cc, t_sp, t_le, t_rc))
            all_same &= same
            rows.append((name, c, per_round, same, int(ref.max())))
            t_cc, t_sp, t_le, t_rc = summary(per_round)
            sp = "skipped" if t_sp is None else f"{t_sp:.2f} ms"
            le = ", ".join(f"{t:.2f} ms at {th} thr" for t, th in zip(t_le, args.threads))
            le += "" if t_rc is None else f", {t_rc:.2f} ms reused at {args.threads[0]} thr"
            print(f"#   c{c}: cc3d {t_cc:.2f} ms, scipy {sp}, lesioneval {le}, "
                  f"n={int(ref.max())}, identical={same}", file=sys.stderr, flush=True)
        if args.keep is None:
            inp.unlink(missing_ok=True)

    def ms(t):
        return "-" if t is None else f"{t:.2f}"

    print(f"Machine: {platform.platform()}; CPU: {cpu_model()}; nproc: {os.cpu_count()}; "
          f"python {platform.python_version()}, numpy {np.__version__}, cc3d 4.1.1 "
          f"(single-threaded), scipy {'not run' if args.no_scipy else __import__('scipy').__version__}")
    print(f"Command: {shlex.join([sys.executable, os.path.abspath(sys.argv[0]), *sys.argv[1:]])}")
    if cmd_example:
        print(f"lesioneval invocation (RAYON_NUM_THREADS={','.join(map(str, args.threads))}): "
              f"{shlex.join(cmd_example)}")
    rounds = "" if args.rounds == 1 else (
        f", then the median over {args.rounds} interleaved rounds (ratios: median of the per-round ratios)")
    warm = f" after {args.warmup} untimed calls" if args.warmup else ""
    print(f"Times are medians of {args.repeat} runs{warm}{rounds}, in ms; ratios against lesioneval at "
          f"{args.threads[0]} thread(s).\n")
    first, more = args.threads[0], args.threads[1:]
    extra = "".join(f" lesioneval {th} thr ms |" for th in more)
    scale = "".join(f" {first} thr / {th} thr |" for th in more)
    rc_head = f" lesioneval {first} thr reused ms | cc3d/reused |" if args.recycle else ""
    print(f"| volume | conn | components | cc3d ms | scipy ms | lesioneval {first} thr ms |{extra} "
          f"cc3d/lesioneval | scipy/lesioneval |{scale}{rc_head} labels identical |")
    print("|---" * (9 + 2 * len(more) + 2 * args.recycle) + "|")
    for name, c, per_round, same, n in rows:
        t_cc, t_sp, t_le, t_rc = summary(per_round)
        cols = "".join(f" {t:.2f} |" for t in t_le[1:])
        sc = "".join(f" {round_ratio(per_round, lambda r: r[2][0], lambda r, k=k: r[2][k])} |"
                     for k in range(1, len(t_le)))
        rc = "" if t_rc is None else f" {t_rc:.2f} | {round_ratio(per_round, lambda r: r[0], lambda r: r[3])} |"
        print(f"| {name} | {c} | {n} | {t_cc:.2f} | {ms(t_sp)} | {t_le[0]:.2f} |{cols} "
              f"{round_ratio(per_round, lambda r: r[0], lambda r: r[2][0])} | "
              f"{round_ratio(per_round, lambda r: r[1], lambda r: r[2][0])} |{sc}{rc} {'yes' if same else 'NO'} |")
    if tmpctx is not None:
        tmpctx.cleanup()
    sys.exit(0 if all_same else 1)


if __name__ == "__main__":
    main()
