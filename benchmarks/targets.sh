#!/usr/bin/env bash
# The trained FFGNN against training-free fusion and the FEN, with the commands a user types.
# For each feature folder (cuhk03_labeled_{train,val}.npz): train-gnn with default flags on the train
# file, then evaluate on the val file: the model, zero-shot camera-aware fusion (the paper's graph
# settings, and the default recipe's lambda=0.3), and the features alone. One JSON line each.
# Usage: bash benchmarks/targets.sh SHARED/features/osnet_x0_25_msmt17 SHARED/features/omz_0277
# With no folders given and REIDGRAPH_SHARED=DIR set (the shared data folder, SHARED above), those two folders
# under DIR are used; without either, the script stops.
# With MODELS=DIR the trained models are kept there (DIR/NAME.pt), e.g. for benchmarks/run.py --default-model.
set -euo pipefail
if [ $# -eq 0 ]; then
  if [ -z "${REIDGRAPH_SHARED:-}" ]; then
    echo "benchmarks/targets.sh: give the feature folders (e.g. SHARED/features/omz_0277), or set REIDGRAPH_SHARED" >&2
    exit 2
  fi
  set -- "$REIDGRAPH_SHARED/features/osnet_x0_25_msmt17" "$REIDGRAPH_SHARED/features/omz_0277"
fi
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
  for row in "model|--model $work/$name.pt" "zero-shot camera-aware|--method fusion-paper --camera-aware" \
             "zero-shot camera-aware lam=0.3|--method fusion-paper --camera-aware --lam 0.3" "FEN features|--method cosine"; do
    # shellcheck disable=SC2086 # the flags are meant to split
    echo "{\"features\": \"$name\", \"row\": \"${row%%|*}\", \"result\": $(reidgraph evaluate "${val[@]}" ${row#*|})}"
  done
done
