#!/usr/bin/env bash
# The committed detection results on the Fashion-MNIST scenes, one after another on a quiet machine (nothing else
# using the CPU):
#  1. the three 60-minute recipes (configs/det/fmnist_scenes_<model>_60min.yaml), each trained from scratch with
#     its settings chosen on val2017, exported to results/det/det_fmnist_<model>/ (summary.json with the validation
#     scores, curves.png, config.yaml, logs), then scored ONCE on test2017 with the weights (raw or EMA) that scored
#     the higher val2017 box AP: results/det/det_fmnist_<model>/test.json ("split": "test", "model", "box_ap",
#     "mask_ap", "total_train_s") and those weights in .../weights/; an existing test.json is never rescored;
#  2. the batch-1 latency of those committed weights on one 64x64 test scene, all in one run
#     (benchmarks/det_latency.py --runs): results/speed/det_fmnist_speed.json;
#  3. one table (params, GMACs, test box/mask AP, training img/s and minutes, latency): results/det/det_fmnist_table.md.
#
#   benchmarks/run_det_results.sh                           # ~3 h 15 min on 2 cores
#   SMOKE=1 OUT_DIR=/tmp/det benchmarks/run_det_results.sh  # a smoke test of this script (tiny settings, minutes)
#   MODELS=ascan_nano_bf16 benchmarks/run_det_results.sh     # another recipe: configs/det/fmnist_scenes_<NAME>_60min.yaml
# MODELS names recipes: each NAME trains configs/det/fmnist_scenes_<NAME>_60min.yaml into results/det/det_fmnist_<NAME>/
# (a family's name, or a variant of its recipe such as ascan_nano_bf16).
# A run cut off (a session's end, SIGTERM) continues from its newest checkpoint when the script is started again:
# runs/ keeps the checkpoints; results committed for a run that is not on this machine are kept, not retrained, and
# their committed weights are timed with the others.
# Extra arguments go to every `hybridvision det train` (e.g. --threads 2).
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
OUT_DIR="${OUT_DIR:-results}"
RUNS_DIR="${RUNS_DIR:-runs/det}"
MODELS="${MODELS:-ascan_nano coatnet_nano efficientmod_nano}"
TRAIN_EXTRA=()
LATENCY_EXTRA=(--rounds 3)
if [ -n "${SMOKE:-}" ]; then
  TRAIN_EXTRA=(--budget_minutes 0 --epochs 1 --max_steps 2 --batch_size 2 --eval_batch_size 4
    --data.root "$OUT_DIR/scenes_coco" --data.scenes.scenes.train_scenes 8 --data.scenes.scenes.val_scenes 4
    --data.scenes.scenes.eval_scenes 4)
  LATENCY_EXTRA=(--rounds 1)
fi
DET_DIR="$OUT_DIR/det" SPEED_DIR="$OUT_DIR/speed"
mkdir -p "$DET_DIR" "$SPEED_DIR"

# 1. Train, export, score the test split once.
results=()
for model in $MODELS; do
  name="det_fmnist_${model}"
  recipe="configs/det/fmnist_scenes_${model}_60min.yaml"
  results+=("$DET_DIR/$name")
  if [ ! -d "$RUNS_DIR/$name" ] && [ -f "$DET_DIR/$name/test.json" ]; then
    echo "kept $DET_DIR/$name (its run is not in $RUNS_DIR; delete $DET_DIR/$name to retrain)"
    continue
  fi
  if "$PY" -c 'import sys; from hybridvision.engine.rundir import RunDir; sys.exit(not RunDir(sys.argv[1]).is_finished())' \
    "$RUNS_DIR/$name"; then
    echo "$RUNS_DIR/$name finished: exported and scored, not trained again"
  else
    "$PY" -m hybridvision det train --config "$recipe" --out_dir "$RUNS_DIR" --run_name "$name" --progress false \
      --resume auto "${TRAIN_EXTRA[@]}" "$@"
  fi
  "$PY" - "$RUNS_DIR/$name" "$DET_DIR/$name" "$recipe" <<'PYEOF'
import sys
from pathlib import Path
from hybridvision.det.report import TEST_FILE, chosen_weights, export_run, score_test
run, out, recipe = sys.argv[1:4]
s = export_run(run, out, recipe=recipe)
print(f"{out}: val box AP {s['box_ap']:.2f}% (EMA {s.get('ema_box_ap', float('nan')):.2f}%), "
      f"mask AP {s['mask_ap']:.2f}%, {s['train_s']:.0f} s training")
if (Path(out) / TEST_FILE).exists():
    print(f"{out}/{TEST_FILE} exists: the test split was scored already, not again")
else:
    weights = chosen_weights(s)  # chosen on val2017
    t = score_test(run, out, weights=weights)
    print(f"{out}: TEST ({weights} weights) box AP {t['box_ap']:.2f}%, mask AP {t['mask_ap']:.2f}%")
PYEOF
done

# 2. Latency of the committed detectors on one test scene (what the mask head sees depends on the weights).
present=()
for out in "${results[@]}"; do [ -d "$out/weights" ] && present+=("$out/weights"); done
if [ "${#present[@]}" -gt 0 ]; then
  "$PY" benchmarks/det_latency.py --runs "$(IFS=,; echo "${present[*]}")" --size 64,64 --channels 1 \
    "${LATENCY_EXTRA[@]}" --out "$SPEED_DIR/det_fmnist_speed.json"
fi

# 3. The table.
"$PY" - "$DET_DIR/det_fmnist_table.md" "$SPEED_DIR/det_fmnist_speed.json" "${results[@]}" <<'PYEOF'
import sys
from hybridvision.det.report import results_table
from hybridvision.fileio import save_text
table = results_table(sys.argv[3:], sys.argv[2])
save_text(table, sys.argv[1])
print(table)
PYEOF
echo "done: $DET_DIR"
