"""The multi-vector (ColBERT) index on real SciFact passages encoded by the ColBERT student: exhaustive search
equals MaxSim computed here passage by passage, candidate generation recovers it, pooling shrinks it, and
the files round-trip."""

from __future__ import annotations

import numpy as np
import pytest

from retrodistill.data.load import load_dataset
from retrodistill.errors import ConfigError
from retrodistill.index.compare import recall_at_k
from retrodistill.index.multivector import MultiVectorIndex, pool_tokens
from retrodistill.students.colbert import ColBERT, maxsim_numpy


@pytest.fixture(scope="module")
def encoded(scifact_slice):
    ds = load_dataset(str(scifact_slice))
    docs = list(ds.corpus.values())[:80]
    model = ColBERT(doc_maxlen=96, seed=0)
    passages = model.encode_passages([d.full_text() for d in docs])
    queries = model.encode_queries([q.text for q in ds.judged_queries()][:20])
    return passages, queries


def _oracle(passages, queries, k):
    """MaxSim of every query against every passage (float16-rounded tokens, as stored), top k by score then row."""
    stored = [p.astype(np.float16).astype(np.float32) for p in passages]
    scores = np.array([[maxsim_numpy(q, p) for p in stored] for q in queries], dtype=np.float32)
    rows = np.array([np.lexsort((np.arange(len(stored)), -s))[:k] for s in scores])
    return np.take_along_axis(scores, rows, axis=1), rows


def test_exhaustive_search_is_maxsim_over_every_passage(encoded):
    passages, queries = encoded
    index = MultiVectorIndex(passages[0].shape[1], exhaustive=True)
    index.add(passages[:50])
    index.add(passages[50:])
    assert index.ntotal == len(passages) and index.ntokens == sum(len(p) for p in passages)
    want_s, want_i = _oracle(passages, queries, 10)
    got_s, got_i = index.search(queries, 10)
    np.testing.assert_array_equal(got_i, want_i)
    np.testing.assert_allclose(got_s, want_s, rtol=0, atol=1e-4)


@pytest.mark.parametrize(("nlist", "ncandidates"), [(0, 10_000), (0, 8), (8, 16)])
def test_token_candidates_recover_the_exhaustive_ranking(encoded, nlist, ncandidates):
    passages, queries = encoded
    want_s, want_i = _oracle(passages, queries, 10)
    index = MultiVectorIndex(passages[0].shape[1], ncandidates=ncandidates, nlist=nlist, nprobe=8)
    index.add(passages)
    got_s, got_i = index.search(queries, 10)
    recall = recall_at_k(got_i, want_i, 10)
    print(f"nlist={nlist} ncandidates={ncandidates}: recall@10 vs exhaustive {recall:.3f}")
    if ncandidates >= index.ntokens:  # every token is a neighbour: every passage is a candidate
        np.testing.assert_array_equal(got_i, want_i)
        np.testing.assert_allclose(got_s, want_s, atol=1e-4)
    else:
        assert recall >= 0.9
    every_s, every_i = _oracle(passages, queries, len(passages))  # candidates are scored exactly
    exact = np.zeros_like(every_s)
    np.put_along_axis(exact, every_i, every_s, axis=1)
    np.testing.assert_allclose(got_s, np.take_along_axis(exact, got_i, axis=1), atol=1e-4)


def test_pooling_shrinks_the_store_and_keeps_the_ranking_close(encoded):
    passages, queries = encoded
    dim = passages[0].shape[1]
    pooled = pool_tokens(passages[0], 2)
    assert len(pooled) == -(-len(passages[0]) // 2) and pooled.shape[1] == dim
    full, half = MultiVectorIndex(dim, exhaustive=True), MultiVectorIndex(dim, exhaustive=True, pool_factor=2)
    full.add(passages)
    half.add(passages)
    assert half.ntokens <= sum(-(-len(p) // 2) for p in passages) < full.ntokens
    recall = recall_at_k(half.search(queries, 10)[1], full.search(queries, 10)[1], 10)
    print(f"pool_factor=2: {half.ntokens} of {full.ntokens} tokens, recall@10 vs unpooled {recall:.3f}")
    assert recall >= 0.7


def test_file_round_trips_memory_mapped_and_deleted_rows_are_skipped(encoded, tmp_path):
    passages, queries = encoded
    index = MultiVectorIndex(passages[0].shape[1], ncandidates=32, nlist=8)
    index.add(passages)
    path = tmp_path / "index.colbert"
    with open(path, "wb") as handle:
        index.write(handle)
    loaded = MultiVectorIndex.load(path)
    assert isinstance(loaded.tokens, np.memmap) and loaded.params == index.params
    np.testing.assert_array_equal(loaded.offsets, index.offsets)
    got_s, got_i = loaded.search(queries, 10)
    want_s, want_i = index.search(queries, 10)
    np.testing.assert_array_equal(got_i, want_i)
    np.testing.assert_array_equal(got_s, want_s)
    assert MultiVectorIndex.load(path, ncandidates=4).ncandidates == 4
    loaded.exclude(want_i[:, 0])
    _, skipped = loaded.search(queries, 10)
    assert not np.isin(skipped, want_i[:, 0]).any()
    with pytest.raises(ConfigError, match="unknown search parameter"):
        MultiVectorIndex.load(path, efSearch=3)
    with pytest.raises(ConfigError, match="fixed at build time"):
        MultiVectorIndex.load(path, nlist=16)
    with pytest.raises(ValueError, match="each passage"):
        index.add([np.zeros((0, index.dim), dtype=np.float32)])
    damaged = tmp_path / "short.colbert"
    damaged.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="shorter than its header"):
        MultiVectorIndex.load(damaged)
