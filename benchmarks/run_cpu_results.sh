#!/usr/bin/env bash
# The committed CPU results: every named model (globs skip the test variants), fp32, channels_last, BatchNorm
# folded, eager PyTorch, with our onnxruntime export of the same weights timed in the same run.
#
#   benchmarks/run_cpu_results.sh                      # writes results/speed/cpu-fp32-nhwc-eager-pt*.{csv,json},
#                                                      # then the README table and docs/speed-cpu.png
#   MODELS=coatnet_test OUT_DIR=/tmp/r benchmarks/run_cpu_results.sh --quick   # a smoke test of this script
#
# Run it on a quiet machine (nothing else using the CPU): on a shared 2-core machine, 2-thread timings swing
# 3-10x. Batch sizes are 1 (latency) and 16 (throughput); batch 64 is left out on CPU because a 60-GMAC model
# takes about a second per image here, so one batch-64 iteration would take a minute. Each warm-up and timed loop
# stops after MAX_S seconds, so the largest models get fewer iterations (the row's `iters` says how many).
# Expect 1-2 hours for all families on 2 cores. Extra arguments go to `hybridvision bench`.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
MODELS="${MODELS:-*}"
OUT_DIR="${OUT_DIR:-results/speed}"

# shellcheck disable=SC2086  # MODELS may hold several names or patterns: globs for `hybridvision bench`, not the shell
set -f
"$PY" -m hybridvision bench $MODELS --device cpu --precision fp32 --channels-last --fused \
  --batch-sizes "${BATCH_SIZES:-1,16}" --repeats "${REPEATS:-3}" \
  --warmup-iters 50 --warmup-s 2 --iters 200 --min-s 1 --max-s "${MAX_S:-30}" \
  --against onnxruntime --save-dir "$OUT_DIR" "$@"
set +f

if [ "$OUT_DIR" = results/speed ]; then
  "$PY" scripts/update_readme_tables.py
  "$PY" -m hybridvision plot results/speed/cpu-fp32-nhwc-eager-*.csv --out docs/speed-cpu.png
else
  "$PY" -m hybridvision plot "$OUT_DIR"/cpu-fp32-nhwc-eager-*.csv --out "$OUT_DIR/speed-cpu.png"
fi
