#!/usr/bin/env bash
# The committed GPU results: every named model in bf16 and fp16 (autocast), channels_last, BatchNorm folded,
# eager and torch.compile'd, at batch 1 (latency) and 16 / 64 (throughput; 16 is AsCAN's protocol), with
# timm's models on the same weights where they exist (timm imports normally on a GPU machine). A last fp32 run
# adds our onnxruntime export (needs onnxruntime-gpu for CUDA; skipped with a note otherwise).
#
#   benchmarks/run_gpu_results.sh            # writes results/speed/<gpu>-{bf16,fp16}-amp-nhwc-{eager,compiled}-*.csv
#
# Use an otherwise idle GPU (no MIG, no other jobs); the environment columns record the GPU, driver, clocks and
# power limit. Extra arguments go to `hybridvision bench`.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
MODELS="${MODELS:-*}"
OUT_DIR="${OUT_DIR:-results/speed}"
COMMON=(--device cuda --channels-last --fused --batch-sizes "${BATCH_SIZES:-1,16,64}" --repeats "${REPEATS:-3}"
        --save-dir "$OUT_DIR")

for precision in bf16 fp16; do
  for mode in --no-compile --compile; do
    # shellcheck disable=SC2086
    "$PY" -m hybridvision bench $MODELS --precision "$precision" "$mode" --against timm "${COMMON[@]}" "$@"
  done
done
# shellcheck disable=SC2086
"$PY" -m hybridvision bench $MODELS --precision fp32 --against onnxruntime,timm "${COMMON[@]}" "$@"

if [ "$OUT_DIR" = results/speed ]; then
  "$PY" scripts/update_readme_tables.py
  "$PY" -m hybridvision plot results/speed/*-bf16-amp-nhwc-compiled-*.csv --out docs/speed-gpu.png
fi
