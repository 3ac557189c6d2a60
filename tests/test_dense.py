"""Dense retrieval: FAISS flat against the numpy oracle and a full score matrix; resumable encoding."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from retrodistill.data.load import load_dataset
from retrodistill.eval.measures import evaluate
from retrodistill.index.encode import corpus_key, encode_corpus
from retrodistill.index.flat import FaissFlatIndex
from retrodistill.index.numpy_flat import NumpyFlatIndex
from retrodistill.retrieval.dense import DenseRetriever


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("emb")


@pytest.fixture(scope="module")
def slice_vectors(scifact_slice, bi_encoder, cache):
    ds = load_dataset(str(scifact_slice))
    docs = list(ds.corpus.values())
    passages = encode_corpus(bi_encoder, docs, cache, show_progress=False)
    queries = bi_encoder.encode_queries([q.text for q in ds.judged_queries()])
    return ds, docs, passages, queries


def test_encoders_return_unit_float32(slice_vectors):
    _, docs, passages, queries = slice_vectors
    assert passages.dtype == np.float32 and queries.dtype == np.float32
    assert passages.shape == (len(docs), 384)
    assert np.allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("chunk", [7, 256])
def test_faiss_flat_equals_numpy_oracle_and_full_matrix(slice_vectors, chunk):
    _, _, passages, queries = slice_vectors
    full = queries @ passages.T
    expected_ids = np.argsort(-full, axis=1, kind="stable")[:, :10]
    for cls in (FaissFlatIndex, NumpyFlatIndex):
        index = cls(384, query_chunk=chunk)
        index.add(passages[:100])
        index.add(passages[100:])
        scores, ids = index.search(queries, 10)
        assert ids.shape == (len(queries), 10)
        np.testing.assert_allclose(scores, np.take_along_axis(full, expected_ids, axis=1), atol=1e-5)
        assert (ids == expected_ids).mean() > 0.99  # float ties may swap neighbours


def test_k_larger_than_corpus_pads(slice_vectors):
    _, _, passages, queries = slice_vectors
    index = FaissFlatIndex(384)
    index.add(passages[:5])
    scores, ids = index.search(queries[:2], 8)
    assert (ids[:, 5:] == -1).all() and np.isneginf(scores[:, 5:]).all()


def test_dense_retriever_end_to_end(scifact_slice, slice_vectors, cache):
    ds = load_dataset(str(scifact_slice))
    retriever = DenseRetriever("sentence-transformers/all-MiniLM-L6-v2", cache_dir=str(cache), show_progress=False)
    retriever.index(ds.corpus)
    run = retriever.retrieve(ds.judged_queries(), k=100, show_progress=False)
    assert all(len(docs) == 100 for docs in run.values())
    assert evaluate(run, ds.qrels, ["nDCG@10"]).aggregate["nDCG@10"] > 0.55


class CountingEncoder:
    def __init__(self, inner):
        self.inner, self.model_id, self.encoded = inner, inner.model_id, 0

    def fingerprint(self):
        return self.inner.fingerprint()

    def encode_passages(self, texts, show_progress=False):
        self.encoded += len(texts)
        return self.inner.encode_passages(texts)


KILL_SCRIPT = """
import sys
from retrodistill.data.load import load_dataset
from retrodistill.index.encode import encode_corpus
from retrodistill.students.bi_encoder import BiEncoder
ds = load_dataset(sys.argv[1])
encode_corpus(BiEncoder("sentence-transformers/all-MiniLM-L6-v2", batch_size=32), list(ds.corpus.values()),
              sys.argv[2], shard_size=32, show_progress=False)
"""


def test_encoding_resumes_after_sigkill(scifact_slice, slice_vectors, bi_encoder, tmp_path):
    _, docs, uninterrupted, _ = slice_vectors
    folder = tmp_path / "embeddings" / corpus_key(bi_encoder, docs)
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(scifact_slice), str(tmp_path)], env=os.environ)
    deadline = time.time() + 240
    while time.time() < deadline and len(list(folder.glob("shard-*.npy"))) < 3:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(folder.glob("shard-*.npy")))
    assert 3 <= done < (len(docs) + 31) // 32, "the kill should land mid-way"
    counting = CountingEncoder(bi_encoder)
    resumed = encode_corpus(counting, docs, tmp_path, shard_size=32, show_progress=False)
    assert counting.encoded <= len(docs) - 32 * done + 32
    np.testing.assert_allclose(resumed, uninterrupted, atol=1e-5)
    again = CountingEncoder(bi_encoder)
    encode_corpus(again, docs, tmp_path, shard_size=32, show_progress=False)
    assert again.encoded == 0


def test_dense_rerank_of_most_of_the_corpus_reads_the_shared_cache(slice_vectors, cache):
    """Candidates covering the whole slice take the cached corpus vectors (written by encode_corpus above)
    and score exactly their inner products; a short list is encoded on its own and agrees within float noise."""
    from retrodistill.retrieval.rerank import BiEncoderReranker

    ds, docs, passages, queries = slice_vectors
    judged = ds.judged_queries()[:4]
    row = {doc.doc_id: i for i, doc in enumerate(docs)}
    everything = {q.query_id: {doc.doc_id: 0.0 for doc in docs} for q in judged}
    reranker = BiEncoderReranker("sentence-transformers/all-MiniLM-L6-v2", cache_dir=str(cache))
    encoded: list[int] = []
    inner = reranker.encoder.encode_passages
    reranker.encoder.encode_passages = lambda texts, **kw: encoded.append(len(texts)) or inner(texts, **kw)
    run = reranker.rerank({q.query_id: q for q in judged}, everything, ds.corpus, show_progress=False)
    assert encoded == []  # every vector came from the cache
    for i, query in enumerate(judged):
        expected = passages @ queries[i]
        got = np.array([run[query.query_id][doc.doc_id] for doc in docs])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    few = {q.query_id: {doc.doc_id: 0.0 for doc in docs[:5]} for q in judged}
    short = reranker.rerank({q.query_id: q for q in judged}, few, ds.corpus, show_progress=False)
    for i, query in enumerate(judged):
        for doc in docs[:5]:
            expected = float(passages[row[doc.doc_id]] @ queries[i])
            assert short[query.query_id][doc.doc_id] == pytest.approx(expected, abs=1e-4)
    assert sum(encoded) == 5  # the short list was encoded on its own
