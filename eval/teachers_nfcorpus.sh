#!/usr/bin/env bash
# NFCorpus cross-encoder teacher, Birch-style: the teacher re-ranks the bm25s top-100 and its z-scored logits
# are mixed with BM25's (`interpolate=W`). W is chosen on beir/nfcorpus/dev, then used once on test.
# Usage: eval/teachers_nfcorpus.sh [MODEL_DIR ...]  (default: train models/ce-nfcorpus-a, also score ce-scifact)
set -euo pipefail
cd "$(dirname "$0")/.."
RD=${RD:-.venv/bin/retrodistill}
PY=${PY:-.venv/bin/python}
RUNS=eval/runs/nfcorpus-teacher
OUT=eval/results/teachers/nfcorpus-interpolated
WEIGHTS=(0.1 0.2 0.3 0.4 0.5 0.7)
mkdir -p "$RUNS" "$OUT"
if [ $# -eq 0 ]; then
  [ -d models/ce-nfcorpus-a/model ] || $RD teacher train --config eval/configs/teachers/ce-nfcorpus-deep-negatives.json
  set -- models/ce-nfcorpus-a models/ce-scifact
fi

for dir in "$@"; do
  name=$(basename "$dir")
  ce="cross-encoder:$dir/model,max_length=160,dtype=bfloat16,store=$RUNS/$name.sqlite"
  systems=(-s "$ce,label=$name")
  for w in "${WEIGHTS[@]}"; do systems+=(-s "$ce,interpolate=$w,label=$name-w$w"); done
  $RD eval -d beir/nfcorpus/dev --candidates bm25s --depth 100 "${systems[@]}" -o "$RUNS/$name-dev" --no-plot
  best=$($PY -c "import json,sys; rows=[s for s in json.load(open(sys.argv[1]))['systems'] if '-w' in s['name']]; \
print(max(rows, key=lambda s: s['metrics']['nDCG@10'])['name'].rsplit('-w', 1)[1])" "$RUNS/$name-dev/metrics.json")
  echo "$name: interpolate=$best chosen on dev"
  $RD eval -d beir/nfcorpus/test --candidates bm25s --depth 100 \
    -s "$ce,label=$name" -s "$ce,interpolate=$best,label=$name-w$best" -o "$RUNS/$name-test" --no-plot
  mkdir -p "$OUT/$name"
  for split in dev test; do cp "$RUNS/$name-$split/metrics.json" "$OUT/$name/metrics-$split.json"; done
  cp "$RUNS/$name-test/config.json" "$OUT/$name/config.json"
done
