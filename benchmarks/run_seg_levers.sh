#!/usr/bin/env bash
# Screening of the scenes' segmentation levers (ascan_nano + UperNet, >= 75% mIoU in 60 CPU-minutes), one after
# another on a quiet machine, one seed each, every one scored on the VALIDATION scenes (the test split is scored
# once per final recipe, not here). The baseline is the best recipe so far: 30 minutes of segmentation from the
# 30-minute classifier (configs/seg/fmnist_scenes_ascan_nano_30min_clf.yaml).
#   base      the baseline as it is
#   lovasz    + Lovász-softmax of the item classes     configs/seg/fmnist_scenes_ascan_nano_30min_levers_lovasz.yaml
#   dice      + soft Dice of the item classes          configs/seg/..._levers_dice.yaml
#   region    + the region-consistency term            configs/seg/..._levers_region.yaml
#   vote      the base run scored with the region vote at each of $VOTES (mode:minority; no training)
#   occlude   a 30-minute classifier on scaled, cut, occluded items
#             (configs/train/fmnist_ascan_nano_30min_levers_occlude.yaml), then the baseline recipe from it
#   combined  configs/seg/..._levers_combined.yaml (Lovász + region term + vote) from the occluded classifier
# Writes results/seg/levers/<name>.json per lever and vote setting (mIoU and EMA mIoU on val, the seg run's
# training seconds, its classifier's, their total, the inference settings; <name>.eval.json: seg eval's own
# output) and results/seg/levers/summary.md (a table against the baseline). Resumable: a lever whose record exists
# is kept; a run cut off continues from its newest checkpoint (--resume auto) when the script is run again, and a
# finished run whose record is missing is only scored. Runs live in runs/levers/<name>.
#
#   benchmarks/run_seg_levers.sh                              # ~4 h 30 min on 2 cores (7 trainings of 30 min)
#   LEVERS="lovasz vote" benchmarks/run_seg_levers.sh         # some of them (vote trains base first if needed)
#   SMOKE=1 OUT_DIR=/tmp/levers RUNS_DIR=/tmp/levers/runs benchmarks/run_seg_levers.sh   # this script, tiny settings
# Extra arguments go to every `hybridvision seg train` (e.g. --threads 2).
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
OUT_DIR="${OUT_DIR:-results}"
RUNS_DIR="${RUNS_DIR:-runs/levers}"
LEVERS="${LEVERS:-base lovasz dice region vote occlude combined}"
VOTES="${VOTES:-mass:1 mass:0.2 mass:0.1 mass:0.05 count:0.1}"
SEG=configs/seg/fmnist_scenes_ascan_nano_30min
CLF_RECIPE=configs/train/fmnist_ascan_nano_30min_levers_occlude.yaml
TRAIN_EXTRA=()
CLF_EXTRA=()
EVAL_EXTRA=()
if [ -n "${SMOKE:-}" ]; then
  TRAIN_EXTRA=(--budget_minutes 0 --epochs 1 --batch_size 8 --data.train_subset 16 --data.eval_subset 16
    --eval_batch_size 16 --amp off)
  CLF_EXTRA=(--budget_minutes 0 --epochs 1 --batch_size 32 --data.train_subset 64 --data.eval_subset 64 --amp off)
  EVAL_EXTRA=(--data.eval_subset 16 --batch_size 16)
fi
LEVER_DIR="$OUT_DIR/seg/levers"
mkdir -p "$LEVER_DIR" "$RUNS_DIR"

done_already() {  # name: its record exists (then say so)
  if [ -f "$LEVER_DIR/$1.json" ]; then
    echo "kept $LEVER_DIR/$1.json (delete it to screen $1 again)"
    return 0
  fi
  return 1
}

train_seg() {  # name config [flags]: train, or continue, runs/levers/<name>
  local name=$1 config=$2
  shift 2
  "$PY" -m hybridvision seg train --config "$config" --out_dir "$RUNS_DIR" --run_name "$name" --progress false \
    --resume auto "${TRAIN_EXTRA[@]}" "$@"
}

ensure_classifier() {  # the occluded-item classifier run: trained (or continued) when unfinished
  if [ ! -f "$RUNS_DIR/clf_occlude/summary.json" ]; then
    "$PY" -m hybridvision train --config "$CLF_RECIPE" --out_dir "$RUNS_DIR" --run_name clf_occlude --progress false \
      --resume auto "${CLF_EXTRA[@]}"
  fi
}

ensure_base() {  # [flags]: the baseline run, trained (or continued) when unfinished
  if [ ! -f "$RUNS_DIR/base/summary.json" ]; then
    train_seg base "${SEG}_clf.yaml" "$@"
  fi
}

screen() {  # name config [flags]: train (or continue) runs/levers/<name>, then score it, unless its record exists
  local name=$1 config=$2
  shift 2
  if done_already "$name"; then
    return 0
  fi
  train_seg "$name" "$config" "$@"
  score "$name" "$RUNS_DIR/$name"
}

score() {  # name run [seg eval flags]: both weights on the validation scenes -> the record (written last)
  local name=$1 run=$2
  shift 2
  "$PY" -m hybridvision seg eval "$run" --data.eval_split val --weights both --out "$LEVER_DIR/$name.eval.json" \
    "${EVAL_EXTRA[@]}" "$@"
  "$PY" - "$name" "$run" "$LEVER_DIR" <<'PYEOF'
import json
import sys
from pathlib import Path

from hybridvision.fileio import save_json
from hybridvision.seg.evaluate import saved_train_config

name, run, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
evaluated = json.loads((out / f"{name}.eval.json").read_text())
cfg = saved_train_config(run)
seg_s = json.loads((run / "summary.json").read_text())["train_s"]
init = Path(cfg.init_from) if cfg.init_from else None
# The classifier's training seconds: its run's summary, or for the committed asset its recipe's record.
ASSET_RECORDS = {Path("assets/fmnist_ascan_nano"): Path("results/classify/fmnist_ascan_nano_30min/summary.json")}
init_s = None
if init is not None:
    summary = init / "summary.json" if (init / "summary.json").is_file() else ASSET_RECORDS.get(init)
    init_s = json.loads(summary.read_text())["train_s"] if summary and summary.is_file() else None
results = evaluated["results"]
record = {
    "lever": name, "split": evaluated["split"], "model": cfg.model, "run": str(run),
    "miou": results["model"]["miou"], "ema_miou": results.get("ema", {}).get("miou"),
    "train_s": seg_s, "init_from": str(init or ""), "init_train_s": init_s,
    "total_train_s": None if init is not None and init_s is None else seg_s + (init_s or 0),
    "loss": {"kind": cfg.loss.kind, "weight": cfg.loss.weight, "background": cfg.loss.background,
             "region_weight": cfg.loss.region_weight},
    "infer": evaluated["infer"], "eval": f"{name}.eval.json",
}  # fmt: skip
save_json(record, out / f"{name}.json")
print(f"{out / name}.json: mIoU {record['miou']:.2f}% (EMA {record['ema_miou'] or float('nan'):.2f}%) on val")
PYEOF
}

for lever in $LEVERS; do
  case "$lever" in
    base)
      if ! done_already base; then
        ensure_base "$@"
        score base "$RUNS_DIR/base"
      fi ;;
    lovasz | dice | region)
      screen "$lever" "${SEG}_levers_$lever.yaml" "$@" ;;
    vote)
      for setting in $VOTES; do
        mode=${setting%%:*} share=${setting#*:}
        if ! done_already "vote_${mode}_$share"; then
          ensure_base "$@"
          score "vote_${mode}_$share" "$RUNS_DIR/base" --infer.region_vote "$mode" --infer.vote_minority "$share"
        fi
      done ;;
    occlude)
      if ! done_already occlude; then
        ensure_classifier
        screen occlude "${SEG}_clf.yaml" --init_from "$RUNS_DIR/clf_occlude" "$@"
      fi ;;
    combined)
      if ! done_already combined; then
        ensure_classifier
        screen combined "${SEG}_levers_combined.yaml" --init_from "$RUNS_DIR/clf_occlude" "$@"
      fi ;;
    *)
      echo "unknown lever '$lever' in LEVERS; use base lovasz dice region vote occlude combined" >&2
      exit 2 ;;
  esac
done

"$PY" - "$LEVER_DIR" <<'PYEOF'
import json
import sys
from pathlib import Path

from hybridvision.fileio import save_text

out = Path(sys.argv[1])
records = [json.loads(p.read_text()) for p in sorted(out.glob("*.json")) if not p.name.endswith(".eval.json")]
base = next((r["miou"] for r in records if r["lever"] == "base"), None)
rows = ["| lever | mIoU % (val) | EMA mIoU % | vs base (pp) | seg train s | total train s |", "|---|---|---|---|---|---|"]
for r in sorted(records, key=lambda r: -r["miou"]):
    delta = "" if base is None else f"{r['miou'] - base:+.2f}"
    ema = "-" if r["ema_miou"] is None else f"{r['ema_miou']:.2f}"
    total = "-" if r["total_train_s"] is None else f"{r['total_train_s']:.0f}"
    rows.append(f"| {r['lever']} | {r['miou']:.2f} | {ema} | {delta} | {r['train_s']:.0f} | {total} |")
table = "\n".join(rows) + "\n"
save_text(table, out / "summary.md")
print(table)
PYEOF
