"""The Qdrant backend (qdrant-client's local mode) on a real SciFact slice: the same top-k as FAISS flat,
an index directory that round-trips, takes updates like a flat one, evaluates to the same run, and
answers through a live server."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from test_serve import LiveServer

from retrodistill.data.load import load_dataset
from retrodistill.errors import ConfigError
from retrodistill.index.encode import encode_corpus
from retrodistill.index.flat import FaissFlatIndex
from retrodistill.index.options import parse_index_option
from retrodistill.index.qdrant import QdrantIndex
from retrodistill.index.store import build_index_dir, load_index_dir
from retrodistill.index.update import add_documents, delete_documents


@pytest.fixture(scope="module")
def slice_vectors(scifact_slice, bi_encoder, tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "index-embeddings"
    ds = load_dataset(str(scifact_slice))
    docs = list(ds.corpus.values())
    passages = encode_corpus(bi_encoder, docs, cache, show_progress=False)
    queries = bi_encoder.encode_queries([q.text for q in ds.judged_queries()])
    return ds, docs, passages, queries, cache


def _faiss(passages, queries, k, excluded=()):
    flat = FaissFlatIndex(passages.shape[1], device="cpu")
    flat.add(passages)
    if len(excluded):
        flat.exclude(excluded)
    return flat.search(queries, k)


def test_local_collection_equals_faiss_flat_saves_loads_and_skips_deleted_rows(slice_vectors, tmp_path):
    _, _, passages, queries, _ = slice_vectors
    index = QdrantIndex(passages.shape[1], exact=True, upload_batch=100)
    index.add(passages[:150])
    index.add(passages[150:])
    assert index.ntotal == len(passages) and index.params["collection"].startswith("retrodistill-")
    want_s, want_i = _faiss(passages, queries, 10)
    got_s, got_i = index.search(queries, 10)
    np.testing.assert_array_equal(got_i, want_i)
    np.testing.assert_allclose(got_s, want_s, atol=1e-5)

    index.save(tmp_path / "index.qdrant")
    loaded = QdrantIndex.load(tmp_path / "index.qdrant", exact=True)
    assert loaded.ntotal == index.ntotal and loaded.collection == index.collection
    np.testing.assert_array_equal(loaded.search(queries, 10)[1], want_i)

    gone = np.unique(want_i[:, :2])
    loaded.exclude(gone)
    skip_s, skip_i = loaded.search(queries, 10)
    flat_s, flat_i = _faiss(passages, queries, 10, gone)
    assert not np.isin(skip_i, gone).any()
    np.testing.assert_array_equal(skip_i, flat_i)
    np.testing.assert_allclose(skip_s, flat_s, atol=1e-5)


def test_options_are_checked_before_anything_runs():
    kind, options = parse_index_option("qdrant,collection=scifact-minilm,hnsw_ef=64")
    assert (kind, options["collection"], options["hnsw_ef"]) == ("qdrant", "scifact-minilm", 64)
    with pytest.raises(ConfigError, match="unknown option 'nprobe'"):
        parse_index_option("qdrant,nprobe=4")
    with pytest.raises(ConfigError, match="positive"):
        QdrantIndex(8, hnsw_ef=0)


def test_index_directory_on_qdrant_updates_and_evaluates_like_flat(slice_vectors, bi_encoder, tmp_path):
    """Half the slice built, the other half added, a third deleted: the same ids and scores as a fresh FAISS
    flat build of the remaining documents; the manifest names the backend and collection; the index
    retriever (``eval --system index:DIR``) gives flat's run."""
    from retrodistill.retrieval.index_dir import IndexDirRetriever

    ds, docs, _, queries, cache = slice_vectors
    half = len(docs) // 2

    def build(path, subset, kind, **params):
        corpus = {d.doc_id: d for d in subset}
        return build_index_dir(path, bi_encoder, corpus, "slice", kind, params, cache_dir=cache, show_progress=False)

    updated = build(tmp_path / "qdrant", docs[:half], "qdrant", exact=True, collection="slice-test")
    add_documents(updated, bi_encoder, docs[half:], cache_dir=cache, show_progress=False)
    gone = sorted(d.doc_id for d in docs[::3])
    delete_documents(updated, gone)
    kept = [d for d in docs if d.doc_id not in set(gone)]
    flat = build(tmp_path / "flat", kept, "flat")

    store, fresh = load_index_dir(updated), load_index_dir(flat, device="cpu")
    info = store.manifest["index"]
    assert (info["type"], info["file"], info["params"]["collection"]) == ("qdrant", "index.qdrant", "slice-test")
    assert info["params"]["url"] is None and store.manifest["corpus"]["size"] == len(kept)
    got = [[(h.doc_id, h.score) for h in row] for row in store.search(queries, 10)]
    want = [[(h.doc_id, h.score) for h in row] for row in fresh.search(queries, 10)]
    assert [[d for d, _ in row] for row in got] == [[d for d, _ in row] for row in want]
    np.testing.assert_allclose([[s for _, s in row] for row in got], [[s for _, s in row] for row in want], atol=1e-5)

    runs = []
    for folder in (updated, flat):
        retriever = IndexDirRetriever(str(folder))
        retriever.index({d.doc_id: d for d in kept})
        runs.append(retriever.retrieve(ds.judged_queries(), k=20, show_progress=False))
    assert {q: list(r) for q, r in runs[0].items()} == {q: list(r) for q, r in runs[1].items()}


def test_live_server_answers_from_a_qdrant_directory(slice_vectors, bi_encoder, tmp_path):
    from retrodistill.serve.app import create_app
    from retrodistill.serve.service import SearchService
    from retrodistill.serve.settings import ServeSettings

    ds, docs, passages, queries, cache = slice_vectors
    folder = build_index_dir(
        tmp_path / "served", bi_encoder, ds.corpus, "slice", "qdrant", cache_dir=cache, show_progress=False
    )
    _, want = _faiss(passages, queries[:3], 5)
    settings = ServeSettings(index_dir=str(folder), max_k=20)
    texts = [q.text for q in ds.judged_queries()][:3]
    with LiveServer(create_app(settings, service=SearchService(settings)), settings) as live:
        live.wait_ready()
        answer = httpx.post(live.url + "/search", json={"queries": texts, "k": 5}, timeout=60)
        assert answer.status_code == 200, answer.text
        got = [[h["doc_id"] for h in result["hits"]] for result in answer.json()["results"]]
        assert httpx.get(live.url + "/info").json()["index"]["type"] == "qdrant"
    assert got == [[docs[r].doc_id for r in row] for row in want]


def test_reconnecting_checks_the_collection_and_drops_an_uncommitted_update():
    """The url= path (reconnect to a collection that outlives the process) on qdrant-client's local engine
    shared between index objects: an existing name is refused at build, a wrong dimension or missing points
    at load, and points above the directory's row count (an add that never committed) are removed."""
    from retrodistill.errors import DataError

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((10, 8)).astype(np.float32)
    built = QdrantIndex(8, collection="shared")
    built.add(vectors)

    def reconnect(dim: int = 8) -> QdrantIndex:
        index = QdrantIndex(dim, collection="shared")
        index._client = built.client
        return index

    with pytest.raises(ConfigError, match=r"already exists \(10 points\)"):
        reconnect().add(vectors[:1])
    with pytest.raises(DataError, match="holds 8-d vectors"):
        reconnect(16)._attach(10)
    with pytest.raises(DataError, match="holds 10 points, the index directory 12"):
        reconnect()._attach(12)
    committed = reconnect()
    committed._attach(7)
    assert committed.ntotal == 7 and built.client.count("shared", exact=True).count == 7
    _, ids = committed.search(vectors[:3], 7)
    assert sorted(ids[0]) == list(range(7)) and (ids >= 0).all()
