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
# Writes (OUT=results) results/diffusion/t2i_fmnist_stage{1,2}/ (summary.json, config.yaml, train/eval logs, eval_*.json,
# grid.png), results/diffusion/t2i_fmnist_curves.png, the table results/diffusion/t2i_fmnist_table.md and, with OUT=results, docs/generation_t2i_stage{1,2}_grid.png and
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
N="${N:-1000}"          # samples per stage-1 evaluation: FID is compared only at equal N
N2="${N2:-500}"         # stage 2 (64x64 costs ~4x per sample): its FID is compared with stage 1's at N2
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

evaluate() {  # RUN OUT_JSON N PROMPTS: the paper's sampler (Heun, 30 steps) with constant CFG; kept when newer than RUN
  if [ -f "$2" ] && [ "$2" -nt "$1/summary.json" ]; then echo "kept $2"; return; fi
  if [ -n "${QUICK:-}" ]; then "$PY" -m hybridvision diffusion eval "$1" "${EVAL[@]}" --prompts "$4" --out "$2"; return; fi
  "$PY" -m hybridvision diffusion eval "$1" "${EVAL[@]}" --n "$3" --prompts "$4" --out "$2"
}
for s in 1 2; do
  run="$RUNS/fmnist_t2i_stage${s}_$([ "$s" = 1 ] && echo 32 || echo 64)"
  dest="$OUT/diffusion/t2i_fmnist_stage$s"
  mkdir -p "$dest"
  "$PY" -c 'import sys; from hybridvision.engine.rundir import RunDir; RunDir(sys.argv[1]).copy_record(sys.argv[2])' \
    "$run" "$dest"  # its config, model description, logs and summary
  evaluate "$run" "$dest/eval_heun30_cfg${CFG}_held_out.json" "$([ "$s" = 1 ] && echo "$N" || echo "$N2")" held_out
  cp "$dest/eval_heun30_cfg${CFG}_held_out.png" "$dest/grid.png"
  if [ "$s" = 1 ]; then  # the same at N2 (stage 2's N, for FID at equal N), then the training prompts at N2
    [ "$N" = "$N2" ] || evaluate "$run" "$dest/eval_heun30_cfg${CFG}_held_out_n$N2.json" "$N2" held_out
    evaluate "$run" "$dest/eval_heun30_cfg${CFG}_train_prompts.json" "$N2" train
  fi
done

"$PY" - "$stage1" "$stage2" "$OUT/diffusion/t2i_fmnist_curves.png" <<'PYEOF'
import sys
from pathlib import Path

from hybridvision.diffusion.report import plot_stages

stage1, stage2, out = sys.argv[1:4]
plot_stages([Path(stage1), Path(stage2)], Path(out), labels=["stage 1 (32x32)", "stage 2 (64x64)"])
print(f"wrote {out}")
PYEOF

if [ "$OUT" = results ] || [ -n "${QUICK:-}" ]; then  # the page's pictures: prompt -> samples, one row per class
  mkdir -p "$DOCS"
  cp "$OUT/diffusion/t2i_fmnist_stage1/grid.png" "$DOCS/generation_t2i_stage1_grid.png"
  cp "$OUT/diffusion/t2i_fmnist_stage2/grid.png" "$DOCS/generation_t2i_stage2_grid.png"
  cp "$OUT/diffusion/t2i_fmnist_curves.png" "$DOCS/generation_t2i_curves.png"
fi

"$PY" - "$OUT" "$CFG" <<'PYEOF'
"""The table of docs/generation.md: one row per stage and evaluation, from the summaries and evaluations written."""
import json
import sys
from pathlib import Path

out, cfg = Path(sys.argv[1]) / "diffusion", sys.argv[2]
lines = ["| stage | size | train s | train img/s | prompts | N | cond. acc. | encoder agreement | FID |",
         "|---|---|---|---|---|---|---|---|---|"]
for s, size in ((1, 32), (2, 64)):
    d = out / f"t2i_fmnist_stage{s}"
    summary = json.loads((d / "summary.json").read_text())
    for path in sorted(d.glob(f"eval_heun30_cfg{cfg}_*.json")):
        ev = json.loads(path.read_text())
        prompts = ev["config"]["prompts"].replace("_", "-")
        agree = ev.get("encoder_agreement", {}).get("pct", float("nan"))
        lines.append(f"| {s} | {size}x{size} | {summary['train_s']:.0f} | {summary['train_img_s']:.0f} | {prompts} "
                     f"| {ev['n']} | {ev['cond_acc']:.1f}% | {agree:.1f}% | {ev['fid']:.2f} |")
note = (f"Heun-30, CFG {cfg}, FID-FMNIST-clf({ev['fid_kind'].split('(')[1].split(')')[0]}) against t10k; "
        f"the classifier's own top-1 on real t10k is {ev['classifier_real_top1']:.2f}%. 64x64 samples are "
        "area-downsampled to 32x32 before the classifier. Encoder agreement: the share of the prompts that "
        "all-MiniLM-L6-v2 alone places nearest their class's training prompts (diffusion/agreement.py).")
(out / "t2i_fmnist_table.md").write_text("\n".join(lines + ["", note]) + "\n")
print("\n".join(lines + ["", note]))
PYEOF
