#!/usr/bin/env bash
# Ours vs timm on CPU, same weights, same run: coatnet_nano_rw_224 and coatnet_0_rw_224 (timm's trained layouts,
# whose weights load into ours exactly), fp32, in NCHW and in channels_last. Batch 1 gives the latency ratio,
# batch 16 the throughput ratio (timm / ours, the rows' rel_latency_p50 / rel_throughput).
#
#   benchmarks/run_timm_cpu.sh            # writes results/speed/cpu-vs-timm-{nchw,nhwc}.{csv,json} and prints the ratios
#   MODELS=coatnet_nano_rw_224 IMG_SIZE=64 OUT_DIR=/tmp/t benchmarks/run_timm_cpu.sh --quick   # smoke test
#
# Needs timm (the `compare` extra, installed with -c constraints.txt). The CPU torch cannot load torchvision's
# CUDA extension; every measuring process completes it (hybridvision.vision_ops) before importing timm. Ours is timed in its inference form (BatchNorm folded; FUSED=0 times it unfused, like timm's).
# Run it on a quiet machine: on a shared 2-core machine 2-thread timings swing 3-10x; ratios from one run hold
# better than absolute numbers. Expect about an hour for both models and both layouts. Extra arguments go to
# `hybridvision bench`.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
MODELS="${MODELS:-coatnet_nano_rw_224 coatnet_0_rw_224}"
OUT_DIR="${OUT_DIR:-results/speed}"
FUSED="$( [ "${FUSED:-1}" = 1 ] && echo --fused || echo --no-fused )"
SIZE=(); [ -n "${IMG_SIZE:-}" ] && SIZE=(--img-size "$IMG_SIZE")
mkdir -p "$OUT_DIR"

for layout in nchw nhwc; do
  flag=$( [ "$layout" = nhwc ] && echo --channels-last || echo --no-channels-last )
  status=0
  # shellcheck disable=SC2086  # MODELS holds several names
  "$PY" -m hybridvision bench $MODELS --against timm --device cpu --precision fp32 \
    "$flag" "$FUSED" ${SIZE[@]+"${SIZE[@]}"} --batch-sizes "${BATCH_SIZES:-1,16}" --repeats "${REPEATS:-3}" \
    --warmup-iters 50 --warmup-s 2 --iters 200 --min-s 1 --max-s "${MAX_S:-30}" \
    --csv "$OUT_DIR/cpu-vs-timm-$layout.csv" --json "$OUT_DIR/cpu-vs-timm-$layout.json" "$@" || status=$?
  [ "$status" -le 1 ] || exit "$status"  # 1 = some row failed: still summarise what was measured
done

"$PY" - "$OUT_DIR" <<'PY'
import csv, sys
from pathlib import Path

print(f"{'model':<22} {'layout':<6} {'timm/ours latency b1':>21} {'timm/ours img/s b>1':>20}  status")
for layout in ("nchw", "nhwc"):
    rows = list(csv.DictReader(open(Path(sys.argv[1]) / f"cpu-vs-timm-{layout}.csv")))
    for model in dict.fromkeys(r["model"] for r in rows):
        timm = [r for r in rows if r["model"] == model and r["impl"] == "timm"]
        lat = next((r["rel_latency_p50"] for r in timm if r["batch_size"] == "1"), "")
        tput = next((r["rel_throughput"] for r in timm if r["batch_size"] != "1"), "")
        status = ";".join(sorted({r["status"] for r in rows if r["model"] == model}))
        fmt = lambda v: f"{float(v):.2f}" if v else "-"  # noqa: E731
        print(f"{model:<22} {layout:<6} {fmt(lat):>21} {fmt(tput):>20}  {status}")
PY
