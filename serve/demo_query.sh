#!/usr/bin/env bash
# Build an index of beir/scifact/test with MODEL, serve it on 127.0.0.1, answer one query over HTTP, stop.
# Usage: serve/demo_query.sh [MODEL] [INDEX_DIR]     (BIN=.venv/bin and PORT=8765 by default)
set -euo pipefail
BIN=${BIN:-.venv/bin}
MODEL=${1:-sentence-transformers/all-MiniLM-L6-v2}
INDEX=${2:-indexes/scifact-demo}
PORT=${PORT:-8765}
QUERY=${QUERY:-"Vitamin D deficiency is associated with a higher risk of respiratory infections."}

"$BIN/retrodistill" index build --model "$MODEL" --corpus beir/scifact/test --out "$INDEX" --force
"$BIN/retrodistill" -q serve "$INDEX" --host 127.0.0.1 --port "$PORT" --log-level warning &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  curl -fs "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { echo "demo_query: the server exited" >&2; exit 1; }
  sleep 1
done
body=$("$BIN/python" -c 'import json, sys; print(json.dumps({"query": sys.argv[1], "k": 3}))' "$QUERY")
echo "POST /search $body"
curl -fsS "http://127.0.0.1:$PORT/search" -H 'Content-Type: application/json' -d "$body" \
  | "$BIN/python" -c '
import json, sys
r = json.load(sys.stdin)
for h in r["results"][0]["hits"]:
    print("%d. %s  %.4f  %s" % (h["rank"], h["doc_id"], h["score"], h["title"][:90]))
print("server latency %.1f ms" % r["latency_ms"])'
