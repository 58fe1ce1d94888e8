#!/usr/bin/env bash
# The generation results of docs/generation.md: the class-conditional AsCAN UNet and the diffusers UNet2DModel
# baseline, each trained 60 minutes on Fashion-MNIST (32x32, pixel space) by the same task and recipe, evaluated
# by our own classifier (conditional accuracy, FID-FMNIST-clf on N samples, the classifier's real t10k top-1),
# a 10x10 grid (one row per class), and the denoiser's speed through `hybridvision bench`.
#
#   benchmarks/run_diffusion_results.sh          # 2 x 60 min training + evaluation (~1 h more) on 2 quiet cores
#   QUICK=1 OUT=/tmp/r RUNS=/tmp/runs CLASSIFIER=/tmp/clf DATA=/tmp/fmnist benchmarks/run_diffusion_results.sh
#                                                # a smoke test of this script (seconds; tiny everything)
#
# Writes (OUT=results) results/diffusion/diffusion_fmnist_{ascan_unet,diffusers_unet}/ (summary.json, config.yaml,
# train/eval logs, curves.png, eval_*.json, grid.png), results/speed/diffusion_fmnist_speed.json, the table
# results/diffusion/diffusion_fmnist_comparison.md and
# docs/generation_fmnist_grid.png. Runs stay in $RUNS and resume when the script is run again. Needs the classifier
# ($CLASSIFIER, a save_pretrained folder: `hybridvision train --config configs/train/fmnist_ascan_nano_30min.yaml`,
# then copy RUN/final there); its t10k reference statistics are computed once when missing. Run on a quiet machine: timings swing 3-10x otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
OUT="${OUT:-results}"
RUNS="${RUNS:-runs/diffusion}"
CLASSIFIER="${CLASSIFIER:-assets/fmnist_ascan_nano}"
DATA="${DATA:-/usr/share/datasets/fashion-mnist}"
MODELS="${MODELS:-ascan_unet diffusers_unet}"
N="${N:-1000}"          # samples per evaluation: FID is compared only at equal N
CFG="${CFG:-2.0}"       # constant guidance scale of the main evaluation
THREADS="${THREADS:-2}"
mkdir -p "$OUT/diffusion" "$OUT/speed"  # results by task: generation, speed

TRAIN=(--data.root "$DATA" --classifier "$CLASSIFIER" --threads "$THREADS")
EVAL=(--n "$N" --classifier "$CLASSIFIER" --data.root "$DATA" --threads "$THREADS")
BENCH=(--batch-sizes 1,2,64,128 --repeats 3 --max-s 20)
STATS_ARGS=()
if [ -n "${QUICK:-}" ]; then
  TRAIN+=(--budget_minutes 0 --epochs 1 --max_steps 2 --batch_size 16 --eval_samples 10 --eval_batch_size 10)
  TRAIN+=(--val_images 20 --data.train_subset 64 --data.eval_subset 40 --sample.steps 2 --progress false)
  EVAL=(--n 20 --classifier "$CLASSIFIER" --data.root "$DATA" --data.eval_subset 40 --sample.steps 2
        --grid_per_class 2 --batch_size 10 --threads 1)
  BENCH=(--quick --batch-sizes 1,2,4)
  STATS_ARGS=(--subset 40)
fi

if [ ! -f "$CLASSIFIER/model.safetensors" ]; then
  echo "no classifier at $CLASSIFIER: train one with \`hybridvision train --config" \
    "configs/train/fmnist_ascan_nano_30min.yaml\` and copy its run's final/ folder there" >&2
  exit 2
fi
if [ ! -f "$CLASSIFIER/t10k_stats.safetensors" ]; then
  "$PY" scripts/fid_reference_stats.py "$CLASSIFIER" --root "$DATA" --out "$CLASSIFIER/t10k_stats.safetensors" \
    "${STATS_ARGS[@]}"
fi

names=()
for m in $MODELS; do
  recipe="configs/diffusion/fmnist_${m}_60min.yaml"
  run="$RUNS/fmnist_${m}_60min"
  dest="$OUT/diffusion/diffusion_fmnist_${m}"
  mkdir -p "$dest"
  names+=("$(sed -n 's/^model: //p' "$recipe")")
  # Results committed for a run that is not on this machine are kept, not retrained (delete $dest to retrain).
  if [ ! -d "$run" ] && [ -f "$dest/summary.json" ] && [ -f "$dest/eval_heun30_sampled.json" ]; then
    echo "kept $dest (its run is not in $RUNS; delete $dest to retrain)"
    continue
  fi
  "$PY" -m hybridvision diffusion train --config "$recipe" --out_dir "$RUNS" --run_name "fmnist_${m}_60min" \
    --resume auto "${TRAIN[@]}"
  # The paper's sampler (Heun, 30 steps) with constant CFG, then its sampled CFG (steps 5..30, 1.1 -> 3.6).
  # An evaluation already written for this run's final weights is kept (a rerun after a kill skips it).
  fresh() { [ ! -f "$1" ] || [ "$run/summary.json" -nt "$1" ]; }
  if fresh "$dest/eval_heun30_cfg${CFG}.json"; then
    "$PY" -m hybridvision diffusion eval "$run" "${EVAL[@]}" --sample.cfg constant --sample.cfg_scale "$CFG" \
      --out "$dest/eval_heun30_cfg${CFG}.json"
  fi
  if fresh "$dest/eval_heun30_sampled.json"; then
    "$PY" -m hybridvision diffusion eval "$run" "${EVAL[@]}" --sample.cfg sampled --out "$dest/eval_heun30_sampled.json"
  fi
  cp "$dest/eval_heun30_cfg${CFG}.png" "$dest/grid.png"
  "$PY" -c 'import sys; from hybridvision.engine.rundir import RunDir; RunDir(sys.argv[1]).copy_record(sys.argv[2])' \
    "$run" "$dest"  # its config, model description, logs and summary
  "$PY" -m hybridvision plot-run "$run" --out "$dest/curves.png"
done

if [ "$OUT" = results ]; then  # the page's picture: 10x10, one row per class, Heun-30 with CFG
  cp "$OUT/diffusion/diffusion_fmnist_ascan_unet/grid.png" docs/generation_fmnist_grid.png 2>/dev/null || true
fi

"$PY" -m hybridvision bench "${names[@]}" --import hybridvision.diffusion --threads "$THREADS" "${BENCH[@]}" \
  --json "$OUT/speed/diffusion_fmnist_speed.json"

"$PY" - "$OUT" "$CFG" $MODELS <<'EOF'
"""The comparison table: one row per model, from the summaries, evaluations and bench rows just written."""
import json
import sys
from pathlib import Path

out, cfg, models = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
speed = json.loads((out / "speed" / "diffusion_fmnist_speed.json").read_text())["rows"]
head = ["model", "params", "MACs/step", "train img/s", "cond. acc. (CFG)", "FID (CFG)", "cond. acc. (sampled)",
        "FID (sampled)", "step ms", "step ms CFG", "samples/s", "samples/s CFG"]
lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
for m in models:
    d = out / "diffusion" / f"diffusion_fmnist_{m}"
    s = json.loads((d / "summary.json").read_text())
    a = json.loads((d / f"eval_heun30_cfg{cfg}.json").read_text())
    b = json.loads((d / "eval_heun30_sampled.json").read_text())
    rows = {r["batch_size"]: r for r in speed if r["model"] == s["model"] and r["impl"] == "hybridvision"}
    big, per_step = max(rows), rows[1]
    cfg_step_ms = 1000 * 2 / rows[2]["throughput_img_s"]  # one image with CFG = one batch-2 evaluation
    evals = a["evals_per_sample"] // 2  # Heun-30: 59 denoiser evaluations per image without guidance
    no_cfg = rows[big]["throughput_img_s"] / evals  # a batch of B images per evaluation
    with_cfg = rows[big]["throughput_img_s"] / 2 / evals  # cond + uncond: 2B per evaluation
    lines.append(
        f"| {s['model']} | {s['params'] / 1e6:.2f}M | {per_step['macs'] / 1e9:.3f}G | {s['train_img_s']:.0f} "
        f"| {a['cond_acc']:.1f}% | {a['fid']:.2f} | {b['cond_acc']:.1f}% | {b['fid']:.2f} "
        f"| {per_step['latency_p50_ms']:.1f} | {cfg_step_ms:.1f} | {no_cfg:.2f} | {with_cfg:.2f} |"
    )
first = json.loads((out / "diffusion" / f"diffusion_fmnist_{models[0]}" / f"eval_heun30_cfg{cfg}.json").read_text())
notes = [
    f"Heun, 30 steps; CFG {cfg} constant, or AsCAN's sampled CFG. {first['fid_kind']}; not comparable with "
    "published (Inception) FID. The classifier's own top-1 on the real images: "
    f"{first['classifier_real_top1']:.2f}%.",
    "Speed (`hybridvision bench`, fp32, 1 image): step ms = one denoiser evaluation (p50 at batch 1); with CFG, "
    "the batched cond + uncond evaluation (batch 2). samples/s at batch "
    f"{max(r['batch_size'] for r in speed)}: throughput / 59 Heun-30 evaluations (CFG: / 118).",
]
(out / "diffusion" / "diffusion_fmnist_comparison.md").write_text("\n".join(lines + [""] + notes) + "\n")
print("\n".join(lines + [""] + notes))
EOF
