#!/usr/bin/env bash
# The three design studies of docs/study.md, one after another, each copied to
# results/study/study_{ascan_layouts,ascan_blocks,families}/:
# AsCAN layouts (~2.6 h), AsCAN block choices (~1.5 h), the three families (~1.9 h) on 2 CPU cores. The last two
# read their reference point (AsCAN's layout, the same runs) from the first's records, so run ascan_layouts first.
#
#   benchmarks/run_studies.sh                         # all three; re-run after an interruption to continue
#   STUDIES="ascan_blocks" benchmarks/run_studies.sh  # one of them
#   benchmarks/run_studies.sh --seeds 0,1,2,3         # extra arguments go to every `hybridvision study`
#
# Resumable: finished runs are read, not retrained; an interrupted run continues from its last checkpoint
# (Ctrl-C writes one). Every run trains for a fixed number of epochs, so load from other processes costs time,
# not accuracy; still run it on a quiet machine: the speed columns are measured at the end of each study.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
STUDIES="${STUDIES:-ascan_layouts ascan_blocks families}"
RESULTS="${RESULTS:-results}"

for name in $STUDIES; do
  echo "== study $name"
  "$PY" -m hybridvision study "configs/study/$name.yaml" --results_dir "$RESULTS/study/study_$name" "$@"
done
