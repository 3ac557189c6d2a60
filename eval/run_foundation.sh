#!/usr/bin/env bash
# Foundation figures: BM25 (bm25s, pyserini) and all-MiniLM-L6-v2 exact search on SciFact and NFCorpus,
# and TREC DL 2019 re-ranking of the rank_llm BM25 top-100. Metrics, configs and plots land in
# eval/results/foundation/<name>/ (the TREC runs stay in eval/runs/, which git ignores).
# Needs RETRODISTILL_TEST_DATA (the shared data folder) for the TREC DL files; `make eval-foundation` sets it.
set -euo pipefail
cd "$(dirname "$0")/.."
RD=${RD:-.venv/bin/retrodistill}
DL=${RETRODISTILL_TEST_DATA:?set RETRODISTILL_TEST_DATA to the folder holding trec-dl-2019/}/trec-dl-2019
out=eval/results/foundation
mkdir -p "$out"

run() {  # name, then eval arguments
  local name=$1; shift
  "$RD" eval "$@" --output "eval/runs/$name"
  mkdir -p "$out/$name"
  cp "eval/runs/$name/metrics.json" "eval/runs/$name/config.json" "eval/runs/$name/metrics.png" "$out/$name/"
}

run scifact --config eval/configs/scifact.json
run nfcorpus --config eval/configs/nfcorpus.json
run dl19-bm25-rerank \
  --qrels "$DL/2019qrels-pass.txt" --queries "$DL/msmarco-test2019-queries.tsv" \
  --candidates "$DL/rank_llm/BM25/retrieve_results_dl19.json.gz" \
  --system dense:sentence-transformers/all-MiniLM-L6-v2,label=all-MiniLM-L6-v2 \
  --measure nDCG@10 --measure "RR(rel=2)@10" --measure "R(rel=2)@100"
