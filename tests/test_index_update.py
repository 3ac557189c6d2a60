"""``index add`` / ``index delete`` on real SciFact slices: an updated flat index answers as a fresh build
of the same documents (same ids; scores equal up to float rounding), HNSW and IVF keep their recall
against it, and bad updates are refused with every file of the directory unchanged."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from retrodistill.data.load import load_dataset
from retrodistill.errors import ConfigError, DataError
from retrodistill.index.compare import recall_at_k
from retrodistill.index.store import build_index_dir, load_index_dir
from retrodistill.index.update import add_documents, delete_documents

EXE = [sys.executable, "-m", "retrodistill.cli.main"]


@pytest.fixture(scope="module")
def parts(scifact_slice, bi_encoder):
    ds = load_dataset(str(scifact_slice))
    docs = list(ds.corpus.values())
    queries = bi_encoder.encode_queries([q.text for q in ds.judged_queries()])
    return docs, queries


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One embedding cache for the module: each document subset is encoded once."""
    return tmp_path_factory.mktemp("update-embeddings")


def _build(path, encoder, docs, cache, index="flat", **params):
    corpus = {d.doc_id: d for d in docs}
    return build_index_dir(path, encoder, corpus, "slice", index, params, cache_dir=cache, show_progress=False)


def _search(path, queries, k=10):
    store = load_index_dir(path, device="cpu")
    scores, rows = store.index.search(queries, k)
    ids = np.array([[store.ids[r] if r >= 0 else "" for r in row] for row in rows])
    return ids, scores, store


def _digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_flat_after_add_and_delete_equals_a_fresh_build(parts, bi_encoder, tmp_path, cache):
    docs, queries = parts
    half = len(docs) // 2
    updated = _build(tmp_path / "updated", bi_encoder, docs[:half], cache)
    record = add_documents(updated, bi_encoder, docs[half:], cache_dir=cache, show_progress=False)
    assert record["op"] == "add" and record["documents"] == len(docs) - half
    fresh = _build(tmp_path / "fresh", bi_encoder, docs, cache)
    got_ids, got_scores, store = _search(updated, queries)
    want_ids, want_scores, _ = _search(fresh, queries)
    assert (got_ids == want_ids).all()
    # a document's vector depends, in the last bits, on the batch it was padded with (the add encodes the
    # second half alone, the fresh build all documents): equal up to float32 rounding, as after the delete
    np.testing.assert_allclose(got_scores, want_scores, rtol=0, atol=1e-6)
    assert store.manifest["corpus"]["size"] == len(docs) and store.manifest["index"]["ntotal"] == len(docs)

    # delete every third document, the first hit of query 0 among them
    gone = {d.doc_id for d in docs[::3]} | {str(want_ids[0, 0])}
    delete_documents(updated, sorted(gone))
    kept = [d for d in docs if d.doc_id not in gone]
    fresh_kept = _build(tmp_path / "fresh-kept", bi_encoder, kept, cache)
    got_ids, got_scores, store = _search(updated, queries)
    want_ids, want_scores, _ = _search(fresh_kept, queries)
    assert not (set(got_ids.ravel()) & gone)
    assert (got_ids == want_ids).all()
    np.testing.assert_allclose(got_scores, want_scores, rtol=0, atol=1e-6)  # FAISS's selector path: float rounding
    corpus = store.manifest["corpus"]
    assert (corpus["size"], corpus["deleted"]) == (len(kept), len(gone))
    assert [u["op"] for u in corpus["updates"]] == ["add", "delete"]
    assert [d.doc_id for d in store.docs.get(store.live_rows)] == [d.doc_id for d in kept]
    # a document deleted, then added again with new text, is found under its id at a new row
    again = docs[0].__class__(docs[0].doc_id, "replacement text about zebrafish heart regeneration", "zebrafish")
    add_documents(updated, bi_encoder, [again], cache_dir=cache, show_progress=False)
    store = load_index_dir(updated, device="cpu")
    hit = store.search(bi_encoder.encode_queries(["zebrafish heart regeneration"]), 1)[0][0]
    assert hit.doc_id == again.doc_id and hit.row == len(docs)


@pytest.mark.parametrize(("index", "params"), [("hnsw", {"M": 16, "efSearch": 64}), ("ivf", {"nlist": 8, "nprobe": 4})])
def test_approximate_indexes_take_updates_and_keep_their_recall(parts, bi_encoder, tmp_path, cache, index, params):
    """Recall@10 of the updated approximate index against a fresh flat build of the same documents,
    printed; IVF with nprobe = nlist must be exact, HNSW on a few hundred vectors near it."""
    docs, queries = parts
    half = len(docs) // 2
    updated = _build(tmp_path / "updated", bi_encoder, docs[:half], cache, index, **params)
    add_documents(updated, bi_encoder, docs[half:], cache_dir=cache, show_progress=False)
    gone = sorted(d.doc_id for d in docs[1::4])
    delete_documents(updated, gone)
    kept = [d for d in docs if d.doc_id not in set(gone)]
    flat_ids, _, _ = _search(_build(tmp_path / "flat", bi_encoder, kept, cache), queries)
    store = load_index_dir(updated, device="cpu", **({"nprobe": 8} if index == "ivf" else {}))
    _, rows = store.index.search(queries, 10)
    ids = np.array([[store.ids[r] for r in row] for row in rows])
    assert not (set(ids.ravel()) & set(gone))
    lookup = {doc_id: i for i, doc_id in enumerate(sorted(set(ids.ravel()) | set(flat_ids.ravel())))}
    recall = recall_at_k(np.vectorize(lookup.get)(ids), np.vectorize(lookup.get)(flat_ids), 10)
    print(f"{index} after add + delete: recall@10 vs fresh flat = {recall:.3f}")
    assert recall == 1.0 if index == "ivf" else recall >= 0.95


def test_bad_updates_are_refused_and_change_nothing(parts, bi_encoder, tmp_path, cache):
    docs, _ = parts
    folder = _build(tmp_path / "idx", bi_encoder, docs[:50], cache)
    before = _digest(folder)
    with pytest.raises(DataError, match="already in the index"):
        add_documents(folder, bi_encoder, [docs[60], docs[3]], cache_dir=cache, show_progress=False)
    with pytest.raises(DataError, match="not in the index"):
        delete_documents(folder, [docs[1].doc_id, "no-such-doc"])
    with pytest.raises(DataError, match="no title or text"):
        add_documents(folder, bi_encoder, [docs[0].__class__("blank", "  ", "")], show_progress=False)
    with pytest.raises(DataError, match="every document"):
        delete_documents(folder, [d.doc_id for d in docs[:50]])
    from retrodistill.students.bi_encoder import BiEncoder

    other, tweaked = tmp_path / "other-model", BiEncoder(bi_encoder.model_id)
    next(tweaked.model.parameters()).data.mul_(1.01)
    tweaked.model.save(str(other))
    changed = BiEncoder(str(other))
    with pytest.raises(ConfigError, match="revision"):
        add_documents(folder, changed, [docs[60]], show_progress=False)
    assert _digest(folder) == before

    done = subprocess.run(
        [*EXE, "index", "delete", str(folder), "--ids", f"{docs[2].doc_id},missing-1"],
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=300,
    )
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "missing-1" in done.stderr and _digest(folder) == before
    done = subprocess.run(
        [*EXE, "-q", "index", "delete", str(folder), "--ids", docs[2].doc_id],
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=300,
    )
    assert done.returncode == 0 and "deleted 1 document(s)" in done.stdout and "49 live" in done.stdout, done.stderr
