"""A ColBERT student indexed, searched, updated and served end to end on a real SciFact slice: the
``colbert`` index directory built by the CLI answers exhaustively as MaxSim computed here passage by
passage, ``eval --system index:DIR`` runs on it, ``index add`` / ``delete`` equal a fresh build, a live
server's /search equals the index, and a model that does not fit the index is refused in one line."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from test_serve import LiveServer

from retrodistill.data.load import load_dataset
from retrodistill.errors import ConfigError
from retrodistill.index.store import build_index_dir, load_index_dir
from retrodistill.index.update import DocumentsExist, add_documents, delete_documents
from retrodistill.retrieval.bm25s_bm25 import BM25sRetriever
from retrodistill.retrieval.hybrid import HybridRetriever
from retrodistill.retrieval.index_dir import IndexDirRetriever
from retrodistill.serve.app import create_app
from retrodistill.serve.service import SearchService
from retrodistill.serve.settings import ServeSettings
from retrodistill.students.colbert import ColBERT, maxsim_numpy
from retrodistill.students.colbert_encoder import ColBERTEncoder

EXE = [sys.executable, "-m", "retrodistill.cli.main"]
KEY = "colbert-test-key"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A ColBERT student folder (MiniLM backbone, projection from seed 0, doc_maxlen 96), saved as training does."""
    folder = tmp_path_factory.mktemp("colbert") / "model"
    ColBERT(doc_maxlen=96, seed=0).save(folder)
    return folder


@pytest.fixture(scope="module")
def built(scifact_slice, model_dir, tmp_path_factory):
    """The slice indexed by the CLI (the index type defaults to colbert for a ColBERT folder)."""
    work = tmp_path_factory.mktemp("colbert-index")
    out, cache = work / "index", work / "cache"
    args = ["index", "build", "--model", str(model_dir), "--corpus", str(scifact_slice), "--out", str(out)]
    done = subprocess.run([*EXE, *args, "--cache-dir", str(cache)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    ds = load_dataset(str(scifact_slice))
    return out, cache, ds


@pytest.fixture(scope="module")
def oracle(built, model_dir):
    """Every query's MaxSim against every passage, computed here on float16-rounded token vectors."""
    _, _, ds = built
    model = ColBERT.load(model_dir)
    model.config_dict["doc_maxlen"] = 96
    docs = list(ds.corpus.values())
    passages = [p.astype(np.float16).astype(np.float32) for p in model.encode_passages([d.full_text() for d in docs])]
    queries = ds.judged_queries()
    q_vecs = model.encode_queries([q.text for q in queries])
    scores = np.array([[maxsim_numpy(q, p) for p in passages] for q in q_vecs], dtype=np.float32)
    return [q.query_id for q in queries], [d.doc_id for d in docs], scores


def test_cli_build_is_exhaustively_maxsim_and_evaluates(built, oracle, scifact_slice, tmp_path):
    out, _, ds = built
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["kind"] == "colbert" and manifest["index"]["type"] == "colbert"
    assert manifest["index"]["file"] == "index.colbert" and manifest["corpus"]["size"] == len(ds.corpus)
    store = load_index_dir(out, device="cpu")
    assert manifest["index"]["tokens"] == store.index.ntokens > 10 * len(ds.corpus)

    qids, doc_ids, scores = oracle
    exact = IndexDirRetriever(str(out), exhaustive=True)
    exact.index(ds.corpus)
    run = exact.retrieve(ds.judged_queries(), k=10, show_progress=False)
    for i, qid in enumerate(qids):
        want = np.lexsort((np.arange(len(doc_ids)), -scores[i]))[:10]
        assert list(run[qid]) == [doc_ids[j] for j in want]
        np.testing.assert_allclose(list(run[qid].values()), scores[i][want], rtol=0, atol=1e-4)

    folder = tmp_path / "eval"
    systems = ["--system", f"index:{out},label=candidates", "--system", f"index:{out},exhaustive=true,label=exact"]
    args = ["eval", "--dataset", str(scifact_slice), *systems, "--k", "100", "--output", str(folder), "--no-plot"]
    done = subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert [s["name"] for s in metrics["systems"]] == ["candidates", "exact"]
    done = subprocess.run([*EXE, "index", "verify", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_hybrid_over_a_colbert_index_is_rrf_of_its_parts(built):
    out, _, ds = built
    queries = ds.judged_queries()[:10]
    parts = []
    for retriever in (BM25sRetriever(), IndexDirRetriever(str(out))):
        retriever.index(ds.corpus)
        parts.append(retriever.retrieve(queries, 50, show_progress=False))
    hybrid = HybridRetriever(str(out), method="rrf", pool=50)
    hybrid.index(ds.corpus)
    got = hybrid.retrieve(queries, 10, show_progress=False)
    for q in queries:
        fused: dict[str, float] = {}  # each list ranked by score, ties by doc id
        for run in parts:
            for rank, doc_id in enumerate(sorted(run[q.query_id], key=lambda d: (-run[q.query_id][d], d)), start=1):
                fused[doc_id] = fused.get(doc_id, 0.0) + 1 / (60 + rank)
        assert sorted(got[q.query_id].values(), reverse=True) == pytest.approx(sorted(fused.values())[::-1][:10])
        assert all(score == pytest.approx(fused[d]) for d, score in got[q.query_id].items())


def _search(path, texts, k=10):
    store = load_index_dir(path, device="cpu")
    scores, rows = store.index.search(store.open_encoder().encode_queries(texts), k)
    return np.array([[store.ids[r] for r in row] for row in rows]), scores, store


def _digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_add_and_delete_equal_a_fresh_build(built, model_dir, bi_encoder, tmp_path):
    _, cache, ds = built
    encoder = ColBERTEncoder(str(model_dir), doc_maxlen=96)
    docs = list(ds.corpus.values())[:160]  # judged docs first, then others
    texts = [q.text for q in ds.judged_queries()]
    half = len(docs) // 2

    def build(name, part, nlist=0):
        corpus = {d.doc_id: d for d in part}
        return build_index_dir(
            tmp_path / name, encoder, corpus, "slice", "colbert", {"nlist": nlist}, cache_dir=cache, show_progress=False
        )

    updated = build("updated", docs[:half])
    add_documents(updated, encoder, docs[half:], cache_dir=cache, show_progress=False)
    got_ids, got_scores, store = _search(updated, texts)
    want_ids, want_scores, _ = _search(build("fresh", docs), texts)
    assert (got_ids == want_ids).all()
    np.testing.assert_array_equal(got_scores, want_scores)
    assert store.manifest["index"]["tokens"] == store.index.ntokens

    approximate = build("updated-ivf", docs[:half], nlist=None)  # IVF cells trained on the first half
    add_documents(approximate, encoder, docs[half:], cache_dir=cache, show_progress=False)
    ivf_ids, _, ivf = _search(approximate, texts)
    recall = float(np.mean([len(set(got) & set(want)) / 10 for got, want in zip(ivf_ids, want_ids, strict=True)]))
    print(f"IVF token index ({ivf.index.nlist} cells from the first half), after add: recall@10 vs flat {recall:.3f}")
    assert ivf.index.nlist > 0 and recall >= 0.9

    gone = {d.doc_id for d in docs[::3]} | {str(want_ids[0, 0])}
    delete_documents(updated, sorted(gone))
    kept = [d for d in docs if d.doc_id not in gone]
    got_ids, got_scores, _ = _search(updated, texts)
    want_ids, want_scores, _ = _search(build("fresh-kept", kept), texts)
    assert not (set(got_ids.ravel()) & gone)
    assert (got_ids == want_ids).all()
    np.testing.assert_allclose(got_scores, want_scores, rtol=0, atol=1e-5)

    before = _digest(updated)
    with pytest.raises(DocumentsExist, match="already in the index"):
        add_documents(updated, encoder, kept[:2], cache_dir=cache, show_progress=False)
    with pytest.raises(ConfigError, match="holds colbert vectors"):
        add_documents(updated, bi_encoder, [docs[0]], cache_dir=cache, show_progress=False)
    assert _digest(updated) == before


def test_served_colbert_index_answers_as_the_index(built):
    out, _, ds = built
    settings = ServeSettings(index_dir=str(out), api_key=KEY, max_wait_ms=20, bm25=True)
    texts = [q.text for q in ds.judged_queries()][:12]
    want_ids, want_scores, _ = _search(out, texts)
    with LiveServer(create_app(settings, service=SearchService(settings)), settings) as live:
        live.wait_ready()

        def ask(i):
            body = {"query": texts[i], "k": 10}
            return httpx.post(live.url + "/search", json=body, headers={"X-API-Key": KEY}, timeout=120)

        with ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(ask, range(len(texts))))
        for i, answer in enumerate(answers):
            assert answer.status_code == 200, answer.text
            (result,) = answer.json()["results"]
            hits = result["hits"]
            assert [h["doc_id"] for h in hits] == list(want_ids[i])
            np.testing.assert_allclose([h["score"] for h in hits], want_scores[i], rtol=0, atol=1e-4)
        hybrid = httpx.post(
            live.url + "/search", json={"query": texts[0], "k": 10, "mode": "hybrid"}, headers={"X-API-Key": KEY}
        )
        assert hybrid.status_code == 200 and len(hybrid.json()["results"][0]["hits"]) == 10


def test_qdrant_multivector_directory_is_exact_maxsim_updates_and_serves(
    built, oracle, model_dir, scifact_slice, tmp_path
):
    """``--index qdrant-colbert`` (qdrant-client's local mode): Qdrant's MAX_SIM over the float16 token vectors
    gives the oracle's top-10 and scores; half built + half added + a third deleted equals a fresh exact
    ``colbert`` build of the rest; a live server answers from it."""
    _, cache, ds = built
    out = tmp_path / "qdrant"
    args = ["index", "build", "--model", str(model_dir), "--corpus", str(scifact_slice), "--out", str(out)]
    args += ["--index", "qdrant-colbert,collection=slice-colbert", "--cache-dir", str(cache)]
    done = subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["model"]["kind"], manifest["metric"]) == ("colbert", "maxsim")
    assert (manifest["index"]["type"], manifest["index"]["file"]) == ("qdrant-colbert", "index.qdrant")
    assert manifest["index"]["params"]["collection"] == "slice-colbert"

    qids, doc_ids, scores = oracle
    texts = [q.text for q in ds.judged_queries()]
    got_ids, got_scores, store = _search(out, texts)
    assert manifest["index"]["tokens"] == store.index.ntokens
    for i in range(len(qids)):
        want = np.lexsort((np.arange(len(doc_ids)), -scores[i]))[:10]
        assert list(got_ids[i]) == [doc_ids[j] for j in want]
        np.testing.assert_allclose(got_scores[i], scores[i][want], rtol=0, atol=1e-4)

    encoder = ColBERTEncoder(str(model_dir), doc_maxlen=96)
    docs = list(ds.corpus.values())[:160]
    half = len(docs) // 2

    def build(name, part, kind, params):
        corpus = {d.doc_id: d for d in part}
        return build_index_dir(
            tmp_path / name, encoder, corpus, "slice", kind, params, cache_dir=cache, show_progress=False
        )

    updated = build("updated", docs[:half], "qdrant-colbert", {})
    add_documents(updated, encoder, docs[half:], cache_dir=cache, show_progress=False)
    gone = sorted(d.doc_id for d in docs[::3])
    delete_documents(updated, gone)
    kept = [d for d in docs if d.doc_id not in set(gone)]
    got_ids, got_scores, _ = _search(updated, texts)
    want_ids, want_scores, _ = _search(build("fresh", kept, "colbert", {"nlist": 0}), texts)
    assert not (set(got_ids.ravel()) & set(gone))
    assert (got_ids == want_ids).all()
    np.testing.assert_allclose(got_scores, want_scores, rtol=0, atol=1e-4)

    settings = ServeSettings(index_dir=str(updated), max_wait_ms=5)
    with LiveServer(create_app(settings, service=SearchService(settings)), settings) as live:
        live.wait_ready()
        answer = httpx.post(live.url + "/search", json={"queries": texts[:3], "k": 10}, timeout=120)
        assert answer.status_code == 200, answer.text
        assert httpx.get(live.url + "/info").json()["index"]["type"] == "qdrant-colbert"
    assert [[h["doc_id"] for h in r["hits"]] for r in answer.json()["results"]] == want_ids[:3].tolist()


@pytest.mark.parametrize(
    ("model", "index", "says"),
    [
        ("sentence-transformers/all-MiniLM-L6-v2", "colbert", "takes a ColBERT model"),
        (None, "flat", "is a ColBERT model"),
        (None, "colbert,pool_factor=0", "must be positive"),
        (None, "qdrant", "index it with --index colbert or qdrant-colbert"),
        ("sentence-transformers/all-MiniLM-L6-v2", "qdrant-colbert", "use flat, hnsw, ivf, ivfpq or qdrant"),
    ],
)
def test_a_model_that_does_not_fit_is_one_line(model, index, says, model_dir, scifact_slice, tmp_path):
    model = model or str(model_dir)
    args = ["index", "build", "--model", model, "--corpus", str(scifact_slice), "--out", str(tmp_path / "x")]
    done = subprocess.run([*EXE, *args, "--index", index], capture_output=True, text=True, timeout=300)
    last = done.stderr.strip().splitlines()[-1]  # value ranges are checked once the model is loaded, before encoding
    assert done.returncode == 2 and last.startswith("retrodistill: error:") and says in last, done.stderr
    assert not (tmp_path / "x").exists()
