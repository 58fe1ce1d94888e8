#!/usr/bin/env bash
# The committed segmentation results, one after another on a quiet machine (nothing else using the CPU):
#  1. the three 30-minute Fashion-MNIST-scenes recipes (configs/seg/fmnist_scenes_<model>_30min.yaml), each exported
#     to results/seg/seg_fmnist_{ascan_nano,coatnet_nano,efficientmod_nano}/: summary.json (metrics, per-class IoU, environment), curves.png,
#     per_class_iou.{json,md}, config.yaml, train/eval logs, overlays/ (ascan_nano);
#  2. their inference speed at 64x64 (`hybridvision bench`, same protocol as every model), results/speed/seg_fmnist_speed.json,
#     and one table of mIoU against throughput: results/seg/seg_fmnist_table.md; ascan_nano's overlays go to docs/seg/;
#  3. segmentation FPS at 512x512 of UperNet on ascan_t, coatnet_0 and efficientmod_s (CPU, fp32, one run):
#     results/speed/seg-cpu-fp32-512.{json,csv}.
#
#   benchmarks/run_seg_results.sh                           # ~1 h 50 min on 2 cores
#   SMOKE=1 OUT_DIR=/tmp/seg benchmarks/run_seg_results.sh  # a smoke test of this script (tiny settings, ~2 min)
# Extra arguments go to every `hybridvision seg train` (e.g. --threads 2).
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
OUT_DIR="${OUT_DIR:-results}"
RUNS_DIR="${RUNS_DIR:-runs/recipes}"
DOCS_DIR="${DOCS_DIR:-$( [ "$OUT_DIR" = results ] && echo docs/seg || echo "$OUT_DIR/docs" )}"
MODELS="${MODELS:-ascan_nano coatnet_nano efficientmod_nano}"
FPS_MODELS="${FPS_MODELS:-ascan_t coatnet_0 efficientmod_s}"
FPS_SIZE="${FPS_SIZE:-512}"
TRAIN_EXTRA=()
BENCH_EXTRA=(--repeats 3)
FPS_EXTRA=(--repeats 1 --warmup-iters 20 --warmup-s 2 --iters 50 --min-s 1 --max-s 60)
if [ -n "${SMOKE:-}" ]; then
  TRAIN_EXTRA=(--budget_minutes 0 --epochs 1 --batch_size 8 --data.train_subset 16 --data.eval_subset 16 --eval_batch_size 16)
  BENCH_EXTRA=(--quick)
  FPS_EXTRA=(--quick)
  FPS_MODELS="${FPS_MODELS_SMOKE:-ascan_test}"
  FPS_SIZE=64
fi
SEG_DIR="$OUT_DIR/seg" SPEED_DIR="$OUT_DIR/speed"  # results by task: segmentation, speed
mkdir -p "$SEG_DIR" "$SPEED_DIR" "$DOCS_DIR"

# 1. Train and export each recipe.
results=()
for model in $MODELS; do
  name="seg_fmnist_${model}"
  recipe="configs/seg/fmnist_scenes_${model}_30min.yaml"
  results+=("$SEG_DIR/$name")
  # Results committed for a run that is not on this machine are kept, not retrained (delete them to retrain).
  if [ ! -d "$RUNS_DIR/$name" ] && [ -f "$SEG_DIR/$name/summary.json" ]; then
    echo "kept $SEG_DIR/$name (its run is not in $RUNS_DIR; delete $SEG_DIR/$name to retrain)"
    continue
  fi
  "$PY" -m hybridvision seg train --config "$recipe" --out_dir "$RUNS_DIR" --run_name "$name" --progress false --resume auto \
    "${TRAIN_EXTRA[@]}" "$@"
  overlays=$( [ "$model" = ascan_nano ] && echo 8 || echo 0 )
  "$PY" - "$RUNS_DIR/$name" "$SEG_DIR/$name" "$recipe" "$overlays" <<'PYEOF'
import sys
from hybridvision.seg.report import export_run
s = export_run(sys.argv[1], sys.argv[2], recipe=sys.argv[3], overlays=int(sys.argv[4]))
print(f"{sys.argv[2]}: mIoU {s['miou']:.2f}%, EMA {s.get('ema_miou', float('nan')):.2f}%, {s['train_s']:.0f} s training")
PYEOF
done

# 2. Inference speed of the same segmentation models (registered as upernet_<backbone> for every backbone).
seg_names=()
for model in $MODELS; do seg_names+=("upernet_$model"); done
"$PY" -m hybridvision bench "${seg_names[@]}" --img-size 64 --device cpu \
  --precision fp32 --channels-last --fused --batch-sizes 1,16 "${BENCH_EXTRA[@]}" --json "$SPEED_DIR/seg_fmnist_speed.json"
"$PY" - "$SEG_DIR/seg_fmnist_table.md" "$SPEED_DIR/seg_fmnist_speed.json" "${results[@]}" <<'PYEOF'
import sys
from hybridvision.fileio import save_text
from hybridvision.seg.report import results_table
table = results_table(sys.argv[3:], sys.argv[2])
save_text(table, sys.argv[1])
print(table)
PYEOF
if [ -d "$SEG_DIR/seg_fmnist_ascan_nano" ]; then
  cp "$SEG_DIR"/seg_fmnist_ascan_nano/overlays/*.png "$DOCS_DIR/" 2>/dev/null || true
fi

# 3. Segmentation FPS at 512x512 (batch 1 = mmseg's FPS; latency percentiles, fraction of the GEMM peak).
fps_names=()
for model in $FPS_MODELS; do fps_names+=("upernet_$model"); done
"$PY" -m hybridvision bench "${fps_names[@]}" --img-size "$FPS_SIZE" --device cpu \
  --precision fp32 --channels-last --fused --batch-sizes 1 "${FPS_EXTRA[@]}" \
  --json "$SPEED_DIR/seg-cpu-fp32-$FPS_SIZE.json" --csv "$SPEED_DIR/seg-cpu-fp32-$FPS_SIZE.csv"
echo "done: $OUT_DIR (results), $DOCS_DIR (docs)"
