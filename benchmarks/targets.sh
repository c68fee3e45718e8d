#!/usr/bin/env bash
# The trained FFGNN against training-free fusion and the FEN, with the commands a user types.
# For each feature folder (cuhk03_labeled_{train,val}.npz): train-gnn with default flags on the train
# file, then evaluate on the val file: the model, zero-shot camera-aware fusion (the paper's graph
# settings, and the default recipe's lambda=0.3), and the features alone. One JSON line each.
# Usage: bash benchmarks/targets.sh ../shared/features/osnet_x0_25_msmt17 ../shared/features/omz_0277
# With MODELS=DIR the trained models are kept there (DIR/NAME.pt), e.g. for benchmarks/run.py --default-model.
set -euo pipefail
if [ -n "${MODELS:-}" ]; then
  work=$MODELS && mkdir -p "$work"
else
  work=$(mktemp -d) && trap 'rm -rf "$work"' EXIT
fi
for dir in "$@"; do
  name=$(basename "$dir")
  start=$(date +%s)
  reidgraph train-gnn --features "$dir/cuhk03_labeled_train.npz" --out "$work/$name.pt" --quiet >&2
  echo "{\"features\": \"$name\", \"train_gnn_seconds\": $(( $(date +%s) - start ))}"
  val=(--features "$dir/cuhk03_labeled_val.npz" --json --quiet)
  for row in "model|--model $work/$name.pt" "zero-shot camera-aware|--fusion zero-shot --camera-aware" \
             "zero-shot camera-aware lam=0.3|--fusion zero-shot --camera-aware --lam 0.3" "FEN features|"; do
    # shellcheck disable=SC2086 # the flags are meant to split
    echo "{\"features\": \"$name\", \"row\": \"${row%%|*}\", \"result\": $(reidgraph evaluate "${val[@]}" ${row#*|})}"
  done
done
