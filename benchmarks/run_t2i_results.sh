#!/usr/bin/env bash
# The text-to-image results of docs/generation.md: the text-conditioned AsCAN UNet trained in two stages on
# Fashion-MNIST prompts (stage 1 at 32x32, stage 2 at 64x64 from stage 1's weights; 90 minutes of training on 2
# cores in total), each stage evaluated on the held-out prompts by our classifier (conditional accuracy: the class
# the classifier assigns is the class the prompt names; FID-FMNIST-clf against the pinned t10k statistics, 64x64
# samples judged at 32x32), a prompt -> samples grid per stage, and the curves of both stages in one figure.
#
#   benchmarks/run_t2i_results.sh          # 60 + 30 min training, then evaluation (~30 min) on 2 quiet cores
#   QUICK=1 OUT=/tmp/r RUNS=/tmp/runs CLASSIFIER=/tmp/clf DATA=/tmp/fmnist DOCS=/tmp/docs \
#     benchmarks/run_t2i_results.sh        # a smoke test of this script (seconds; tiny everything)
#
# Writes $OUT/t2i_fmnist_stage{1,2}/ (summary.json, config.yaml, train/eval logs, eval_*.json, grid.png),
# $OUT/t2i_fmnist_curves.png and, with OUT=results, docs/generation_t2i_stage{1,2}_grid.png and
# docs/generation_t2i_curves.png. Runs stay in $RUNS and resume when the script is run again. Needs the
# classifier ($CLASSIFIER, a save_pretrained folder) and the text extra (pip install -c constraints.txt '.[text]').
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
OUT="${OUT:-results}"
RUNS="${RUNS:-runs/t2i}"
DOCS="${DOCS:-docs}"
CLASSIFIER="${CLASSIFIER:-assets/fmnist_ascan_nano}"
DATA="${DATA:-/usr/share/datasets/fashion-mnist}"
N="${N:-1000}"          # samples per evaluation: FID is compared only at equal N
CFG="${CFG:-2.0}"       # constant guidance scale of the evaluation
THREADS="${THREADS:-2}"

TRAIN=(--data.root "$DATA" --classifier "$CLASSIFIER" --threads "$THREADS" --out_dir "$RUNS" --resume auto)
EVAL=(--n "$N" --classifier "$CLASSIFIER" --data.root "$DATA" --threads "$THREADS" --prompts held_out
      --sample.cfg constant --sample.cfg_scale "$CFG")
if [ -n "${QUICK:-}" ]; then
  TRAIN+=(--budget_minutes 0 --epochs 1 --max_steps 2 --batch_size 16 --eval_samples 10 --eval_batch_size 10)
  TRAIN+=(--val_images 20 --data.train_subset 64 --data.eval_subset 40 --sample.steps 2 --progress false)
  TRAIN+=(--model ascan_unet_t2i_test)
  EVAL=(--n 20 --classifier "$CLASSIFIER" --data.root "$DATA" --data.eval_subset 40 --sample.steps 2
        --grid_per_class 2 --batch_size 10 --threads 1 --prompts held_out)
fi

if [ ! -f "$CLASSIFIER/model.safetensors" ]; then
  echo "no classifier at $CLASSIFIER: train one with \`hybridvision train --config" \
    "configs/train/fmnist_ascan_nano_30min.yaml\` and copy its run's final/ folder there" >&2
  exit 2
fi

stage1="$RUNS/fmnist_t2i_stage1_32"
stage2="$RUNS/fmnist_t2i_stage2_64"
"$PY" -m hybridvision diffusion train --config configs/diffusion/fmnist_t2i_stage1_32.yaml --run_name "$(basename "$stage1")" \
  "${TRAIN[@]}"
"$PY" -m hybridvision diffusion train --config configs/diffusion/fmnist_t2i_stage2_64.yaml --run_name "$(basename "$stage2")" \
  --init_from "$stage1" "${TRAIN[@]}"

for s in 1 2; do
  run="$RUNS/fmnist_t2i_stage${s}_$([ "$s" = 1 ] && echo 32 || echo 64)"
  dest="$OUT/t2i_fmnist_stage$s"
  mkdir -p "$dest"
  # The paper's sampler (Heun, 30 steps) with constant CFG on the held-out prompts.
  "$PY" -m hybridvision diffusion eval "$run" "${EVAL[@]}" --out "$dest/eval_heun30_cfg${CFG}_held_out.json"
  cp "$dest/eval_heun30_cfg${CFG}_held_out.png" "$dest/grid.png"
  for f in summary.json config.yaml train_log.csv eval_log.csv; do cp "$run/$f" "$dest/"; done
done

"$PY" - "$stage1" "$stage2" "$OUT/t2i_fmnist_curves.png" <<'PYEOF'
import sys
from pathlib import Path

from hybridvision.diffusion.stages import plot_stages

stage1, stage2, out = sys.argv[1:4]
plot_stages([Path(stage1), Path(stage2)], Path(out), labels=["stage 1 (32x32)", "stage 2 (64x64)"])
print(f"wrote {out}")
PYEOF

if [ "$OUT" = results ] || [ -n "${QUICK:-}" ]; then  # the page's pictures: prompt -> samples, one row per class
  mkdir -p "$DOCS"
  cp "$OUT/t2i_fmnist_stage1/grid.png" "$DOCS/generation_t2i_stage1_grid.png"
  cp "$OUT/t2i_fmnist_stage2/grid.png" "$DOCS/generation_t2i_stage2_grid.png"
  cp "$OUT/t2i_fmnist_curves.png" "$DOCS/generation_t2i_curves.png"
fi

"$PY" - "$OUT" "$CFG" <<'PYEOF'
"""The table of docs/generation.md: one row per stage, from the summaries and evaluations just written."""
import json
import sys
from pathlib import Path

out, cfg = Path(sys.argv[1]), sys.argv[2]
lines = ["| stage | size | train s | train img/s | cond. acc. (held-out prompts) | FID | classifier on real t10k |",
         "|---|---|---|---|---|---|---|"]
for s, size in ((1, 32), (2, 64)):
    d = out / f"t2i_fmnist_stage{s}"
    summary = json.loads((d / "summary.json").read_text())
    ev = json.loads((d / f"eval_heun30_cfg{cfg}_held_out.json").read_text())
    lines.append(f"| {s} | {size}x{size} | {summary['train_s']:.0f} | {summary['train_img_s']:.0f} "
                 f"| {ev['cond_acc']:.1f}% | {ev['fid']:.2f} | {ev['classifier_real_top1']:.2f}% |")
note = f"Heun-30, CFG {cfg}, {ev['fid_kind']}; 64x64 samples are area-downsampled to 32x32 before the classifier."
(out / "t2i_fmnist_table.md").write_text("\n".join(lines + ["", note]) + "\n")
print("\n".join(lines + ["", note]))
PYEOF
