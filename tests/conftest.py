"""Test setup: point the standard offline variables at the shared mirror, and give tests small real data.

The Makefile exports the same variables; the defaults here make a bare ``pytest`` work too.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RETRODISTILL_SHARED", ROOT.parent / "shared"))
DATA = Path(os.environ.get("RETRODISTILL_TEST_DATA", SHARED / "data"))
MODEL = "sentence-transformers/all-MiniLM-L6-v2"

if (SHARED / "hf-hub").is_dir():
    os.environ.setdefault("HF_HUB_CACHE", str(SHARED / "hf-hub"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Precision `auto` depends on the CPU; tests compare scores with float32 references (test_precision covers auto).
os.environ.setdefault("RETRODISTILL_PRECISION", "float32")
# Under pytest-xdist each worker gets its share of the cores: OpenMP (FAISS, torch) spinning on every core
# in every worker oversubscribes them, and a FAISS OPQ training then runs 3.5x slower than on one thread.
# Set before torch and FAISS load, so it binds them and every subprocess a test starts.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    _share = len(os.sched_getaffinity(0)) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _share)))


def pytest_sessionstart(session: pytest.Session) -> None:
    if not (DATA / "scifact" / "corpus.jsonl.gz").is_file():
        raise pytest.UsageError(
            f"test data not found at {DATA}; set RETRODISTILL_TEST_DATA to the shared data folder (make test does)"
        )


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def irds_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A writable ir_datasets home (ir_datasets writes caches beside its downloads)."""
    if os.environ.get("IR_DATASETS_HOME"):
        return Path(os.environ["IR_DATASETS_HOME"])
    home = tmp_path_factory.mktemp("irds")
    shutil.copytree(SHARED / "ir_datasets", home, dirs_exist_ok=True)
    os.environ["IR_DATASETS_HOME"] = str(home)
    return home


def _read_jsonl_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.fixture(scope="session")
def scifact_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real BEIR folder cut from SciFact: 40 test queries, their judged docs and 400 other docs."""
    src = DATA / "scifact"
    lines = (src / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], [line.split("\t") for line in lines[1:] if line.strip()]
    qids = list(dict.fromkeys(r[0] for r in rows))[:40]
    rows = [r for r in rows if r[0] in qids]
    judged = {r[1] for r in rows}
    corpus = _read_jsonl_gz(src / "corpus.jsonl.gz")
    docs = [d for d in corpus if d["_id"] in judged] + [d for d in corpus[:400] if d["_id"] not in judged]
    queries = [q for q in _read_jsonl_gz(src / "queries.jsonl.gz") if q["_id"] in qids]
    out = tmp_path_factory.mktemp("scifact_slice")
    (out / "qrels").mkdir()
    (out / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    (out / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    body = "\r\n".join([header.rstrip("\r"), *("\t".join(c.rstrip("\r") for c in r) for r in rows)]) + "\r\n"
    (out / "qrels" / "test.tsv").write_text(body, encoding="utf-8", newline="")
    return out


@pytest.fixture(scope="session")
def bi_encoder():
    from retrodistill.students.bi_encoder import BiEncoder

    return BiEncoder(MODEL, batch_size=32)


@pytest.fixture(scope="session")
def cross_encoder_dir(tmp_path_factory):
    """A CrossEncoder folder (all-MiniLM-L6-v2 body with a seeded, untrained one-logit head)."""
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("ce") / "cross-encoder"
    CrossEncoder(MODEL, num_labels=1).save(str(folder))
    return folder


@pytest.fixture(scope="session")
def bm25_store(scifact_slice, tmp_path_factory):
    """Teacher scores from BM25 (a real scorer) over the top 12 candidates plus the judged positives."""
    from retrodistill.data.load import load_dataset
    from retrodistill.retrieval.bm25s_bm25 import BM25sRetriever
    from retrodistill.teachers.records import ScoredPair, TeacherSpec
    from retrodistill.teachers.store import ScoreStore

    ds = load_dataset(str(scifact_slice))
    bm25 = BM25sRetriever()
    bm25.index(ds.corpus)
    run = bm25.retrieve(ds.judged_queries(), k=len(ds.corpus), show_progress=False)
    path = tmp_path_factory.mktemp("store") / "bm25.sqlite"
    spec = TeacherSpec("bm25s", "bm25s", "0.3", "pointwise", "bm25")
    with ScoreStore(path, spec) as store:
        rows = []
        for qid, docs in run.items():
            keep = sorted(docs, key=lambda d: -docs[d])[:12] + [d for d in ds.qrels[qid] if d in docs]
            rows += [ScoredPair(qid, d, docs[d]) for d in dict.fromkeys(keep)]
        store.add(rows)
    return path
