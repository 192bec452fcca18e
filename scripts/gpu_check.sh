#!/usr/bin/env bash
# GPU check for a machine with a real GPU (written for the H100/H200 device runs).
# Runs the GPU test binaries, then times `label --device gpu` against `--device cpu`
# on 192x192x160 sparse, 512^3 sparse and 512^3 random masks, and checks that
# both write byte-identical label files; then times `infer --device gpu` and
# `--device cpu` against onnxruntime on all cores (scripts/bench_infer.py) and
# checks the probabilities agree within 1e-4.
#
# Usage: scripts/gpu_check.sh [OUTDIR]
#   BIN=target/release/lesioneval   the binary (built with `cargo build --release`)
#   TESTS="target/release/deps/gpu-* ..."  test binaries (`cargo test --release --no-run`)
#   REPEAT=5                       label repeats (medians are reported)
#   SIZES=192x192x160,512x512x512
#   LABEL=1 INFER=1                run the labelling / inference sections
#   CCL=0                          1: also run scripts/bench_ccl.py --recycle (CPU labeller vs cc3d at 1 and
#                                  2 threads, no scipy; needs cc3d and nibabel importable) on this
#                                  host's CPU — a quieter, bigger machine than the usual dev VM
#   CCL_REPEAT=3 CCL_ARGS="--rounds 3 --kinds sparse,random"   more bench_ccl.py options
#   FLOORS=target/release/deps/label_cpu-HASH   the label_cpu bench (`cargo build --release --benches`):
#                                  also run its LABEL_BENCH_FLOORS=1 mode, the CPU labeller against
#                                  this host's limits (a second thread on plain arithmetic and on two
#                                  independent labellings at once; about a minute)
#   INFER_CASES="nnunet:192,192,160 keras:128,128,128"   model:volume shape pairs
#   (LESIONEVAL_NO_VENV=1 makes the Python scripts use the python3 at hand:
#    numpy, nibabel, onnx, onnxruntime must be importable)
set -uo pipefail
OUT=${1:-gpu_check_out}
BIN=${BIN:-target/release/lesioneval}
REPEAT=${REPEAT:-5}
SIZES=${SIZES:-192x192x160,512x512x512}
mkdir -p "$OUT"
VOL=${VOL:-/tmp/lesioneval_gpu_vols}
LOG="$OUT/gpu_check.md"
: >"$LOG"
say() { echo "$*" | tee -a "$LOG"; }

say "# lesioneval GPU check"
say ""
say "- date: $(date -u +%FT%TZ)"
say "- GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo unknown)"
say "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
say "- binary: $BIN ($("$BIN" --version))"
say ""

status=0
if [ -n "${TESTS:-}" ]; then
  say "## GPU tests (LESIONEVAL_REQUIRE_GPU=1)"
  for t in $TESTS; do
    if LESIONEVAL_REQUIRE_GPU=1 "$t" --test-threads 2 >"$OUT/$(basename "$t").log" 2>&1; then
      say "- $(basename "$t"): $(grep -E '^test result' "$OUT/$(basename "$t").log" | tail -1)"
    else
      say "- $(basename "$t"): FAILED (see $(basename "$t").log)"; status=1
    fi
  done
  say ""
fi

if [ "${LABEL:-1}" = 1 ]; then
python3 "$(dirname "$0")/make_bench_volumes.py" "$VOL" --sizes "$SIZES" >/dev/null || exit 2
say "## label: GPU vs CPU (median of $REPEAT; kernel = GPU time of all kernels, end-to-end = label call incl. upload, readback, statistics)"
say ""
say "| volume | conn | lesions | CPU label ms | GPU end-to-end ms | GPU kernel ms | upload ms | readback ms | clock | CPU/GPU e2e | labels identical |"
say "|---|---|---|---|---|---|---|---|---|---|---|"
for f in "$VOL"/*.nii; do
  name=$(basename "$f" .nii)
  for c in 6 18 26; do
    g=$("$BIN" label "$f" --connectivity $c --device gpu --timings --repeat "$REPEAT" --out "$VOL/g.nii" 2>&1 >"$VOL/g.txt") || { say "| $name | $c | GPU run failed: $g |"; status=1; continue; }
    k=$("$BIN" label "$f" --connectivity $c --device cpu --timings --repeat "$REPEAT" --out "$VOL/c.nii" 2>&1 >/dev/null)
    n=$(grep -o '[0-9]* lesions' "$VOL/g.txt" | cut -d' ' -f1)
    get() { echo "$1" | grep -o "$2=[0-9.a-z]*" | head -1 | cut -d= -f2 | sed 's/ms$//'; }
    same=no; cmp -s "$VOL/g.nii" "$VOL/c.nii" && same=yes
    [ "$same" = yes ] || status=1
    ratio=$(python3 -c "print(f'{$(get "$k" label)/$(get "$g" label):.2f}')")
    say "| $name | $c | $n | $(get "$k" label) | $(get "$g" label) | $(get "$g" kernel) | $(get "$g" upload) | $(get "$g" readback) | $(get "$g" kernel_clock) | $ratio | $same |"
  done
done
rm -f "$VOL/g.nii" "$VOL/c.nii"
say ""
fi

if [ "${INFER:-1}" = 1 ]; then
  say "## infer: lesioneval GPU and CPU vs onnxruntime CPU (all cores), same sliding window"
  say ""
  for mc in ${INFER_CASES:-nnunet:192,192,160 keras:128,128,128}; do
    m=${mc%%:*}; shape=${mc#*:}
    if PYTHONUNBUFFERED=1 python3 "$(dirname "$0")/bench_infer.py" --model "$m" --shape "$shape" --repeat "${INFER_REPEAT:-3}" \
        --bin "$BIN" --json "$OUT/infer_$m.json" >"$OUT/infer_$m.log" 2>&1; then
      say "### $m, volume $shape"; say ""; grep -E '^(model|volume)' "$OUT/infer_$m.log" | tee -a "$LOG"; say ""
      grep -E '^\|' "$OUT/infer_$m.log" | tee -a "$LOG"; say ""
    else
      say "- infer $m $shape: FAILED (see infer_$m.log)"; status=1
    fi
  done
fi
if [ "${CCL:-0}" = 1 ]; then
  say "## CPU labeller vs cc3d on this host (scripts/bench_ccl.py, 1 and 2 threads, and reused volume)"
  say ""
  if python3 "$(dirname "$0")/bench_ccl.py" --bin "$BIN" --sizes "$SIZES" --threads 1,2 --repeat "${CCL_REPEAT:-3}" --recycle \
      --no-scipy --uncompressed ${CCL_ARGS:-} >"$OUT/bench_ccl.md" 2>"$OUT/bench_ccl.log"; then
    tee -a "$LOG" <"$OUT/bench_ccl.md"
  else
    say "- bench_ccl.py: FAILED or labels differ (see bench_ccl.log)"; cat "$OUT/bench_ccl.md" >>"$LOG"; status=1
  fi
  say ""
fi
if [ -n "${FLOORS:-}" ]; then
  say "## CPU labeller against this host's limits (benches/label_cpu.rs, LABEL_BENCH_FLOORS=1)"
  say ""
  if LABEL_BENCH_FLOORS=1 "$FLOORS" >"$OUT/floors.md" 2>"$OUT/floors.log"; then
    tee -a "$LOG" <"$OUT/floors.md"
  else
    say "- floors: FAILED (see floors.log)"; status=1
  fi
  say ""
fi
say "exit status: $status"
exit $status
