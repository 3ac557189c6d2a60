#!/usr/bin/env bash
# NFCorpus cross-encoder teachers, each re-ranking the bm25s top-100 alone and Birch-style (its z-scored logits
# mixed with BM25's, `interpolate=W`; W is chosen on beir/nfcorpus/dev, then used once on test).
# Default models: ce-nfcorpus-distilled-qrels (the SciFact CE mixed with BM25 plus the train qrels, distilled into
# one CE on NFCorpus train queries), ce-nfcorpus-distilled (the same without the qrels), ce-nfcorpus-a (trained
# on NFCorpus train qrels alone) and ce-scifact (zero-shot). Needs models/ce-scifact.
# Usage: eval/teachers_nfcorpus.sh [MODEL_DIR ...]
set -euo pipefail
cd "$(dirname "$0")/.."
RD=${RD:-.venv/bin/retrodistill}
PY=${PY:-.venv/bin/python}
RUNS=eval/runs/nfcorpus-teacher
OUT=eval/results/teachers/nfcorpus-interpolated
WEIGHTS=(0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9)
mkdir -p "$RUNS" "$OUT"
if [ $# -eq 0 ]; then
  mkdir -p eval/runs/nfcorpus-chain
  $RD teach -t cross-encoder:models/ce-scifact/model,max_length=160,dtype=bfloat16 \
    -s eval/runs/nfcorpus-chain/scifact-ce-train.sqlite -d beir/nfcorpus/train --depth 60  # seconds once done
  for name in ce-nfcorpus-distilled-qrels ce-nfcorpus-distilled; do
    [ -d models/$name/model ] || $RD teacher train --config eval/configs/teachers/$name.json
  done
  [ -d models/ce-nfcorpus-a/model ] || $RD teacher train --config eval/configs/teachers/ce-nfcorpus-deep-negatives.json
  set -- models/ce-nfcorpus-distilled-qrels models/ce-nfcorpus-distilled models/ce-nfcorpus-a models/ce-scifact
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
