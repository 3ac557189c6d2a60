"""PyseriniBM25 on a real SciFact slice: Lucene BM25 checked against its formula and against bm25s.

Needs pyserini 0.22.1 + Java 11+ and ``RETRODISTILL_TEST_DATA`` (the folder holding ``scifact/``).
These tests fail, rather than skip, when pyserini or Java is broken.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import sys
from collections import Counter
from pathlib import Path

import pytest

from retrodistill.data.records import Document, Query
from retrodistill.errors import MissingDependencyError, RetrodistillError
from retrodistill.retrieval import pyserini_bm25
from retrodistill.retrieval.pyserini_bm25 import PyseriniBM25

pytestmark = pytest.mark.pyserini

N_FIRST_DOCS = 300
N_QUERIES = 20
K1, B = 0.9, 0.4


def _scifact_slice() -> tuple[dict[str, Document], list[Query], dict[str, dict[str, int]]]:
    """The first 300 SciFact docs plus the docs judged for the first 20 test queries."""
    root = Path(os.environ["RETRODISTILL_TEST_DATA"]) / "scifact"
    qrels: dict[str, dict[str, int]] = {}
    with open(root / "qrels" / "test.tsv", encoding="utf-8", newline="") as f:
        next(f)  # query-id, corpus-id, score
        for line in f:
            qid, did, score = line.rstrip("\r\n").split("\t")
            if qid in qrels or len(qrels) < N_QUERIES:
                qrels.setdefault(qid, {})[did] = int(score)
    judged = {did for docs in qrels.values() for did in docs}
    corpus: dict[str, Document] = {}
    with gzip.open(root / "corpus.jsonl.gz", "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            row = json.loads(line)
            if i < N_FIRST_DOCS or row["_id"] in judged:
                corpus[row["_id"]] = Document(row["_id"], row["text"], row.get("title") or "")
    queries: dict[str, Query] = {}
    with gzip.open(root / "queries.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["_id"] in qrels:
                queries[row["_id"]] = Query(row["_id"], row["text"])
    assert judged <= corpus.keys() and len(queries) == N_QUERIES
    return corpus, [queries[qid] for qid in qrels], qrels


@pytest.fixture(scope="module")
def data() -> tuple[dict[str, Document], list[Query], dict[str, dict[str, int]]]:
    return _scifact_slice()


@pytest.fixture(scope="module")
def indexed(data, tmp_path_factory) -> tuple[PyseriniBM25, Path]:
    index_dir = tmp_path_factory.mktemp("lucene")
    retriever = PyseriniBM25(k1=K1, b=B, threads=2, index_dir=str(index_dir))
    retriever.index(data[0])
    yield retriever, index_dir
    retriever.close()


def _lucene_length(length: int) -> int:
    """Lucene's lossy document-length norm: SmallFloat.byte4ToInt(SmallFloat.intToByte4(length))."""
    free = 24  # SmallFloat.NUM_FREE_VALUES
    if length < free:
        return length
    value = length - free
    shift = value.bit_length() - 4
    if shift < 0:
        return length
    return free + (((value >> shift) & 0x07 | 0x08) << shift)


def test_scores_follow_the_lucene_bm25_formula(data, indexed) -> None:
    """Recompute BM25 in Python from the index's own analysed doc vectors and term statistics."""
    from pyserini.index.lucene import IndexReader

    corpus, queries, _ = data
    retriever, index_dir = indexed
    reader = IndexReader(str(index_dir))
    vectors = {doc_id: reader.get_document_vector(doc_id) or {} for doc_id in corpus}
    df = Counter(term for vector in vectors.values() for term in vector)
    lengths = {doc_id: sum(vector.values()) for doc_id, vector in vectors.items()}
    stats = reader.stats()
    assert stats["documents"] == len(corpus) and stats["total_terms"] == sum(lengths.values())
    n_docs = sum(1 for length in lengths.values() if length > 0)
    avgdl = sum(lengths.values()) / n_docs

    run = retriever.retrieve(queries, k=10, show_progress=False)
    for query in queries:
        terms = Counter(reader.analyze(query.text))  # Anserini weights a repeated query term by its count
        expected = {}
        for doc_id, vector in vectors.items():
            norm = K1 * (1 - B + B * _lucene_length(lengths[doc_id]) / avgdl)
            score = sum(
                count * math.log(1 + (n_docs - df[t] + 0.5) / (df[t] + 0.5)) * vector[t] / (vector[t] + norm)
                for t, count in terms.items()
                if t in vector
            )
            if score > 0:
                expected[doc_id] = score
        got = run[query.query_id]
        for doc_id, score in got.items():
            assert score == pytest.approx(expected[doc_id], rel=1e-4), (query.query_id, doc_id)
        best = sorted(expected.values(), reverse=True)[: len(got)]
        assert list(got.values()) == pytest.approx(best, rel=1e-4), query.query_id


def test_agrees_with_bm25s_and_finds_judged_docs(data, indexed) -> None:
    import bm25s
    import Stemmer

    corpus, queries, qrels = data
    retriever, _ = indexed
    run = retriever.retrieve(queries, k=10, show_progress=False)
    doc_ids = list(corpus)
    stemmer = Stemmer.Stemmer("porter")
    model = bm25s.BM25(k1=K1, b=B, method="lucene")
    model.index(
        bm25s.tokenize([corpus[d].full_text() for d in doc_ids], stopwords="en", stemmer=stemmer, show_progress=False),
        show_progress=False,
    )
    tokens = bm25s.tokenize([q.text for q in queries], stopwords="en", stemmer=stemmer, show_progress=False)
    indices, _ = model.retrieve(tokens, k=10, show_progress=False)
    overlaps = [
        len(set(run[q.query_id]) & {doc_ids[i] for i in row}) / 10 for q, row in zip(queries, indices, strict=True)
    ]
    assert sum(overlaps) / len(overlaps) >= 0.6
    found = [bool(set(run[q.query_id]) & set(qrels[q.query_id])) for q in queries]
    assert sum(found) >= 0.7 * len(queries)


def test_deterministic_across_calls_and_indexes(data, indexed) -> None:
    corpus, queries, _ = data
    retriever, _ = indexed
    first = retriever.retrieve(queries, k=100, show_progress=False)
    second = retriever.retrieve(queries, k=100, show_progress=False)
    assert first == second
    assert [list(first[q.query_id]) for q in queries] == [list(second[q.query_id]) for q in queries]
    other = PyseriniBM25(k1=K1, b=B, threads=1)  # one segment instead of two, temp index
    other.index(corpus)
    try:
        third = other.retrieve(queries, k=100, show_progress=False)
    finally:
        other.close()
    assert [list(third[q.query_id].items()) for q in queries] == [list(first[q.query_id].items()) for q in queries]


@pytest.mark.parametrize("k", [1, 7, 50])
def test_k_is_honoured_and_scores_sorted(data, indexed, k: int) -> None:
    _, queries, _ = data
    retriever, _ = indexed
    run = retriever.retrieve(queries, k=k, show_progress=False)
    assert set(run) == {q.query_id for q in queries}
    for hits in run.values():
        assert 0 < len(hits) <= k
        scores = list(hits.values())
        assert scores == sorted(scores, reverse=True) and all(s > 0 for s in scores)
    assert sum(len(hits) == k for hits in run.values()) >= len(queries) - 1


def test_missing_pyserini_says_pip_install(data, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pyserini", None)
    corpus, _, _ = data
    with pytest.raises(MissingDependencyError, match="pip install"):
        PyseriniBM25().index(corpus)


def test_missing_java_says_how_to_install(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RetrodistillError, match="openjdk-17-jdk-headless"):
        pyserini_bm25._ensure_java_home()


def test_java_home_from_path(monkeypatch, tmp_path) -> None:
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("#!/bin/sh\n")
    java.chmod(0o755)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(java.parent))
    pyserini_bm25._ensure_java_home()
    assert os.environ["JAVA_HOME"] == str(tmp_path / "jdk")
