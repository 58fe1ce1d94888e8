#!/usr/bin/env bash
# The side-by-side deployment table of docs/deploy.md: each model through every installed backend and precision
# (PyTorch eager fp32, onnxruntime fp32/int8, OpenVINO fp32/int8, ExecuTorch-XNNPACK fp32/int8, PT2E int8 in
# torch), batch-1 latency and batch-16 throughput, interleaved in one run per model, 2 threads for every runtime,
# every file checked against fp32 PyTorch before it is timed. Run it on a quiet machine (nothing else using the
# CPU); it writes results/deploy/table_<model>.json and prints each model's table (about an hour on 2 cores), then the
# side-by-side table, results/deploy/deploy_table.md and results/deploy/deploy_table.json (benchmarks/deploy_table.py).
# Target: int8 at least 1.5x faster than onnxruntime fp32 at batch 1 for ascan_t and efficientmod_s.
#
#   benchmarks/run_deploy_table.sh
#   MODELS="ascan_nano" EXTRA="--quick" OUT_DIR=/tmp/deploy benchmarks/run_deploy_table.sh   # a smoke test
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
OUT_DIR="${OUT_DIR:-results/deploy}"
MODELS="${MODELS:-ascan_t efficientmod_s coatnet_0_rw_224 ascan_nano coatnet_nano efficientmod_nano}"
# Fewer, shorter loops than bench's defaults (which cap each loop at 60 s), so that 8 backends x 6 models fit in
# under an hour: two fresh processes per backend (the repeats, interleaved), each warming up for 5 iterations and
# 1 s and timing at least 10 iterations and 1 s (at most 10 s) per batch size.
read -r -a EXTRA <<< "${EXTRA:---repeats 2 --warmup_iters 5 --warmup_s 1 --iters 10 --min_s 1 --max_s 10}"
mkdir -p "$OUT_DIR"
# Every installed backend in fp32 and int8 (RUNTIMES="onnxruntime:int8,openvino:int8" for fewer).
RUNTIMES="${RUNTIMES:-all}"
failed=()
for model in $MODELS; do
  "$PY" -m hybridvision bench "$model" --runtimes "$RUNTIMES" --batch_sizes 1,16 --threads 2 --roofline false \
    "${EXTRA[@]}" --json "$OUT_DIR/table_${model}.json" || failed+=("$model")
done
"$PY" benchmarks/deploy_table.py --dir "$OUT_DIR"
[ "${#failed[@]}" -eq 0 ] || { echo "some rows failed (see each table's notes): ${failed[*]}"; exit 1; }
