# retrodistill: `make demo` and `make test` work on a fresh machine with nothing installed by hand.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED ?= $(abspath $(CURDIR)/../shared)

# Offline mirror of the hub and the datasets, when the project sits beside ../shared (CI, dev machines).
ifneq ($(wildcard $(SHARED)/hf-hub),)
export HF_HUB_CACHE ?= $(SHARED)/hf-hub
export HF_HUB_OFFLINE ?= 1
export RETRODISTILL_TEST_DATA ?= $(SHARED)/data
endif
export IR_DATASETS_HOME ?= $(CURDIR)/.cache/ir_datasets
export RETRODISTILL_CACHE ?= $(CURDIR)/.cache/retrodistill
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test lint java chromium irds eval-foundation eval-teachers clean

install: $(STAMP)

# torch first, pinned to the CPU wheel; a bare `torch` requirement resolved first can pull a CUDA build.
# Then every extra `make demo` and `make test` use (`all` takes CPU FAISS; see README, "Install").
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[all,dev,pyserini,ray,qdrant,onnx,openvino]'
	$(BIN)/pip install -q --no-deps pyserini==0.22.1
	touch $@

# ir_datasets writes caches beside its downloads, so it gets a writable copy of the mirror.
irds: $(IR_DATASETS_HOME)/.ready
$(IR_DATASETS_HOME)/.ready:
	mkdir -p $(IR_DATASETS_HOME)
	if [ -d $(SHARED)/ir_datasets ]; then cp -r $(SHARED)/ir_datasets/. $(IR_DATASETS_HOME)/ && chmod -R u+w $(IR_DATASETS_HOME); fi
	touch $@

# pyserini 0.22.1 needs Java 11+ (Debian's 17); install it when missing and we may.
java:
	@command -v java >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  apt-get update -qq && apt-get install -y -qq openjdk-17-jdk-headless >/dev/null; } || \
	  echo "warning: no Java found; the pyserini backend and its tests need Java 17"

# Headless Chromium for the web-page test (Debian's package; playwright drives /usr/bin/chromium).
chromium:
	@command -v chromium >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
	  echo "warning: no chromium found; the web-page test needs it"

# The whole chain on SciFact: train a cross-encoder teacher on the train qrels (100 steps), score the BM25
# top-12 of 400 train queries into a score store, distil all-MiniLM-L6-v2 from the stored scores, print
# BM25 / student init / teacher re-ranking the top-10 / student, then index the student and answer one
# query over HTTP. Precision is `auto`: bfloat16 only on CPUs with AVX512-BF16/AMX (or a GPU), float32
# elsewhere; RETRODISTILL_PRECISION=float32 forces float32. Measured on a fresh clone of an idle 2-core CPU in
# float32: 20 min 14 s, install included, peak RSS 7.1 GiB; with the student's activation checkpointing
# (now in the demo config) its training step peaks at 2.9 GiB (README "make demo"; a loaded machine takes longer).
# Run again, it re-uses every stage. The full benchmark:
#   python eval/ablation.py eval/configs/students/scifact-ablation.json
demo: $(STAMP) irds
	$(BIN)/retrodistill teacher train --config eval/configs/demo/ce-scifact.json
	$(BIN)/retrodistill distill eval/configs/demo/distill-scifact.json
	@echo "== index + serve: index the distilled student and answer one query over HTTP"
	BIN=$(BIN) bash serve/demo_query.sh eval/runs/demo/student/model indexes/scifact-demo
	$(BIN)/retrodistill report eval/runs/demo --out eval/runs/demo/report.html

# Two workers, one test file each (`--dist loadfile` keeps a file's module fixtures in one process). On a
# fresh clone of a 2-core machine: tests 25.3 min against 25.7 in one process (27.5 min with the install),
# peak RSS 3.2 GiB against 5.4 GiB, since no one process holds every module's models.
test: $(STAMP) irds java chromium
	$(BIN)/ruff check retrodistill tests
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=25

lint: $(STAMP)
	$(BIN)/ruff check retrodistill tests
	$(BIN)/ruff format --check retrodistill tests

# The foundation figures recorded in eval/results/ (about 15 minutes on 2 cores).
eval-foundation: $(STAMP) irds java
	bash eval/run_foundation.sh

# The teacher figures in eval/results/teachers/ (hours on 2 cores: CE training, SmolLM2 on TREC DL 2019).
eval-teachers: $(STAMP) irds
	$(BIN)/retrodistill teacher train --config eval/configs/teachers/ce-scifact.json
	$(BIN)/python eval/bench_teach.py --queries 10 --depth 30 --per-pair 40 --max-length 256
	RD=$(BIN)/retrodistill bash eval/teachers_dl19.sh
	RD=$(BIN)/retrodistill PY=$(BIN)/python bash eval/teachers_nfcorpus.sh

clean:
	rm -rf $(VENV) .cache eval/runs
