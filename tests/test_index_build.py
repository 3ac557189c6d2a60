"""Index directories: every index type against the numpy oracle, the build CLI, kill-and-resume, eval."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from retrodistill.data.load import load_dataset
from retrodistill.errors import ConfigError
from retrodistill.eval.measures import evaluate
from retrodistill.index import INDEX_TYPES
from retrodistill.index.compare import compare_indexes, recall_at_k
from retrodistill.index.encode import encode_corpus
from retrodistill.index.numpy_flat import NumpyFlatIndex
from retrodistill.index.store import build_index_dir, load_index_dir

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
EXE = [sys.executable, "-m", "retrodistill.cli.main"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXE, *args], capture_output=True, text=True, env=os.environ, timeout=900)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One embedding cache for the session's index and serve tests: the slice is encoded once."""
    return tmp_path_factory.getbasetemp() / "index-embeddings"


@pytest.fixture(scope="module")
def vectors(scifact_slice, bi_encoder, cache):
    ds = load_dataset(str(scifact_slice))
    docs = list(ds.corpus.values())
    passages = encode_corpus(bi_encoder, docs, cache, show_progress=False)
    queries = bi_encoder.encode_queries([q.text for q in ds.judged_queries()])
    return ds, docs, passages, queries


def exact(passages, queries, k):
    oracle = NumpyFlatIndex(passages.shape[1])
    oracle.add(passages)
    return oracle.search(queries, k)


def test_recall_at_k_arithmetic():
    found = np.array([[1, 2, 3], [4, 5, -1]])
    truth = np.array([[3, 2, 9], [4, 6, 7]])
    assert recall_at_k(found, truth, 3) == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert recall_at_k(truth, truth, 2) == 1.0


@pytest.mark.parametrize(
    ("kind", "params"),
    [("flat", {}), ("hnsw", {"M": 16, "efSearch": 400}), ("ivf", {"nlist": 8, "nprobe": 8}), ("ivfpq", {"m": 48})],
)
def test_index_types_against_numpy_oracle_and_save_load(vectors, tmp_path, kind, params):
    _, _, passages, queries = vectors
    want_scores, want_ids = exact(passages, queries, 10)
    index = INDEX_TYPES.get(kind)(384, device="cpu", **params)
    index.add(passages)
    assert index.is_trained and index.ntotal == len(passages)
    scores, ids = index.search(queries, 10)
    recall = recall_at_k(ids, want_ids, 10)
    if kind in ("flat", "ivf"):  # ivf with nprobe == nlist scans every cell: exact
        np.testing.assert_allclose(scores, want_scores, atol=1e-5)
        assert recall > 0.99
    elif kind == "hnsw":
        assert recall >= 0.95
    else:
        assert index.params["m"] == 48 and recall >= 0.4
    index.save(tmp_path / "index.faiss")
    if kind == "ivfpq":  # 48 code bytes + 8 id bytes per vector, plus centroids and codebooks
        assert (tmp_path / "index.faiss").stat().st_size < len(passages) * 56 + 256 * 384 * 4 + 2 * 384 * 4 * 12 + 4096
    loaded = INDEX_TYPES.get(kind).load(tmp_path / "index.faiss", device="cpu", **index.params)
    assert loaded.params == index.params
    again_scores, again_ids = loaded.search(queries, 10)
    np.testing.assert_array_equal(again_ids, ids)
    np.testing.assert_allclose(again_scores, scores, atol=1e-6)


def test_ivf_trains_on_first_add_and_search_params_change_in_place(vectors):
    _, _, passages, queries = vectors
    index = INDEX_TYPES.get("ivf")(384, device="cpu", nprobe=1)
    assert not index.is_trained and index.ntotal == 0
    index.add(passages)
    nlist = min(int(4 * np.sqrt(len(passages))), len(passages) // 39)
    assert index.is_trained and index.params["nlist"] == nlist
    _, want = exact(passages, queries, 10)
    one_cell = recall_at_k(index.search(queries, 10)[1], want, 10)
    index.set_search_params(nprobe=nlist)
    assert index.params["nprobe"] == nlist
    assert recall_at_k(index.search(queries, 10)[1], want, 10) > 0.99 > one_cell
    with pytest.raises(ConfigError, match="efSearch"):
        index.set_search_params(efSearch=10)


def test_index_build_picks_the_fewest_ivf_cells_that_reach_the_recall_target(vectors, bi_encoder, cache, tmp_path):
    """Without nprobe, `index build` sets the smallest nprobe of 1, 2, 4, ... whose recall@10 on probe
    queries (word spans of the corpus, query-encoded, their source left out) reaches recall_target. The
    test recomputes that recall with a full numpy score matrix: the chosen nprobe reaches it, the one
    before does not; the manifest keeps the curve; a given nprobe is kept and nothing is calibrated."""
    from retrodistill.index.calibrate import exact_top, nprobe_grid, probe_spans

    ds, docs, passages, _ = vectors
    target = 0.9
    out = build_index_dir(
        tmp_path / "ivf", bi_encoder, ds.corpus, "slice", "ivf", {"recall_target": target}, cache_dir=cache,
        device="cpu", show_progress=False,
    )  # fmt: skip
    info = json.loads((out / "manifest.json").read_text())["index"]
    nprobe, nlist = info["params"]["nprobe"], info["params"]["nlist"]
    assert info["calibration"]["nprobe"] == nprobe and info["calibration"]["probes"] == 256
    rows, spans = probe_spans(docs, 256, 0)
    assert len(rows) == len(set(rows.tolist())) == 256
    probes = bi_encoder.encode_queries(spans)
    scores = probes @ passages.T
    scores[np.arange(len(rows)), rows] = -np.inf
    truth = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(exact_top(probes, passages, 10, rows, chunk=37), truth)
    store = load_index_dir(out, device="cpu")

    def recall(p: int) -> float:
        store.index.set_search_params(nprobe=p)
        found = store.index.search(probes, 11)[1]
        kept = [[int(r) for r in f if r != s][:10] for f, s in zip(found, rows, strict=True)]
        return float(np.mean([len(set(k).intersection(t)) / 10 for k, t in zip(kept, truth.tolist(), strict=True)]))

    grid = nprobe_grid(nlist)
    assert recall(nprobe) >= target
    assert info["calibration"]["recall@10"] == pytest.approx(recall(nprobe), abs=1e-4)
    if nprobe > 1:
        assert recall(grid[grid.index(nprobe) - 1]) < target
    given = build_index_dir(
        tmp_path / "given", bi_encoder, ds.corpus, "slice", "ivf", {"nprobe": 3}, cache_dir=cache, device="cpu",
        show_progress=False,
    )  # fmt: skip
    info = json.loads((given / "manifest.json").read_text())["index"]
    assert info["params"]["nprobe"] == 3 and "calibration" not in info


def test_nprobe_calibration_stops_at_the_plateau_when_pq_codes_cap_recall(vectors, bi_encoder, caplog):
    """IVF-PQ without refine cannot reach recall 1.0: the calibration keeps the smallest nprobe within 0.005
    of the best recall it measured, says so, and names refine as the fix."""
    from retrodistill.index.calibrate import calibrate_nprobe
    from retrodistill.index.ivfpq import IVFPQIndex

    _, docs, passages, _ = vectors
    index = IVFPQIndex(384, device="cpu", m=8)
    index.add(passages)
    with caplog.at_level("WARNING"):
        result = calibrate_nprobe(index, bi_encoder, docs, passages, target=1.0)
    best = max(result.curve.values())
    assert not result.reached and best < 1.0 and "refine" in caplog.text
    assert result.recall >= best - 0.005 and index.nprobe == result.nprobe
    assert all(r < best - 0.005 for p, r in result.curve.items() if p < result.nprobe)


def test_ivfpq_refine_rescores_the_pq_shortlist_exactly_and_reads_vectors_memory_mapped(vectors, tmp_path):
    """IVF-PQ with refine on the slice's real embeddings: with every cell scanned and a shortlist of the whole
    slice, refine=flat equals the numpy oracle (ids and exact scores) and refine=fp16 nearly, where PQ alone
    does not; saved and loaded memory-mapped it answers the same, refuses new vectors, skips deleted rows."""
    from retrodistill.index.ivfpq import IVFPQIndex

    _, _, passages, queries = vectors
    want_s, want_i = exact(passages, queries, 10)
    shortlist = -(-len(passages) // 10)
    recall = {}
    for refine in (None, "fp16", "flat"):
        index = IVFPQIndex(384, device="cpu", nlist=4, nprobe=4, m=16, refine=refine, k_factor=shortlist)
        index.add(passages)
        got_s, got_i = index.search(queries, 10)
        recall[refine] = recall_at_k(got_i, want_i, 10)
        if refine == "flat":
            assert (got_i == want_i).all()
            np.testing.assert_allclose(got_s, want_s, atol=1e-5)
            index.save(tmp_path / "refine.faiss")
    print("recall@10 by refine:", recall)
    assert recall["flat"] == 1.0 and recall["fp16"] >= 0.97 and recall[None] < recall["fp16"]

    loaded = IVFPQIndex.load(tmp_path / "refine.faiss", device="cpu", nprobe=4, m=16, refine="flat", k_factor=shortlist)
    assert loaded.mmapped and loaded.params["refine"] == "flat"
    got_s, got_i = loaded.search(queries, 10)
    assert (got_i == want_i).all()
    with pytest.raises(ConfigError, match="memory-mapped"):
        loaded.add(passages[:2])
    loaded.exclude(want_i[:, 0])
    _, skipped = loaded.search(queries, 10)
    assert not np.isin(skipped, want_i[:, 0]).any()
    writable = IVFPQIndex.load(tmp_path / "refine.faiss", mmap=False, device="cpu", refine="flat", k_factor=4)
    writable.add(passages[:2])
    assert writable.ntotal == len(passages) + 2 and not writable.mmapped


def test_ivfpq_opq_learns_an_orthonormal_rotation_and_keeps_search_exact_under_refine(vectors, tmp_path):
    """OPQ (a learned rotation before the PQ): the rotation is orthonormal (A A^T = I, so inner products are
    kept), the codes stay m bytes, search alone finds most true neighbours, and with refine=flat over the
    whole slice the answer equals the numpy oracle; save / load finds the rotation again, deletions are
    skipped through the rotation and the refinement."""
    import faiss

    from retrodistill.index.ivfpq import IVFPQIndex

    _, _, passages, queries = vectors
    want_s, want_i = exact(passages, queries, 10)
    plain = IVFPQIndex(384, device="cpu", nlist=4, nprobe=4, m=16)
    rotated = IVFPQIndex(384, device="cpu", nlist=4, nprobe=4, m=16, opq=True)
    for index in (plain, rotated):
        index.add(passages)
    rotation = faiss.downcast_VectorTransform(faiss.downcast_index(rotated.index).chain.at(0))
    a = faiss.vector_to_array(rotation.A).reshape(384, 384)
    np.testing.assert_allclose(a @ a.T, np.eye(384), atol=1e-4)
    recall = {name: recall_at_k(i.search(queries, 10)[1], want_i, 10) for name, i in (("pq", plain), ("opq", rotated))}
    print("recall@10, PQ alone vs OPQ:", recall)
    assert recall["opq"] >= 0.4 and rotated.params["opq"] is True and "opq" not in plain.params

    refined = IVFPQIndex(384, device="cpu", nlist=4, nprobe=4, m=16, opq=True, refine="flat", k_factor=len(passages))
    refined.add(passages)
    got_s, got_i = refined.search(queries, 10)
    assert (got_i == want_i).all()
    np.testing.assert_allclose(got_s, want_s, atol=1e-5)
    rotated.save(tmp_path / "opq.faiss")  # 16 code bytes + 8 id bytes per vector; centroids, codebooks, rotation
    fixed = (4 + 256 + 384) * 384 * 4 + 4096
    assert (tmp_path / "opq.faiss").stat().st_size < len(passages) * 24 + fixed
    for index, name in ((rotated, "opq.faiss"), (refined, "opq-refine.faiss")):
        index.save(tmp_path / name)
        loaded = IVFPQIndex.load(tmp_path / name, device="cpu", nprobe=4, k_factor=len(passages))
        assert loaded.params == index.params and loaded.params["opq"] is True
        np.testing.assert_array_equal(loaded.search(queries, 10)[1], index.search(queries, 10)[1])
        loaded.exclude(want_i[:, 0])
        assert not np.isin(loaded.search(queries, 10)[1], want_i[:, 0]).any()


@pytest.fixture(scope="module")
def flat_dir(scifact_slice, vectors, cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("idx") / "flat"
    result = cli(
        "-q", "index", "build", "--model", MODEL, "--corpus", str(scifact_slice), "--out", str(out),
        "--cache-dir", str(cache),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def test_build_writes_manifest_ids_docs_and_searches_exactly(flat_dir, vectors, bi_encoder):
    ds, docs, passages, queries = vectors
    manifest = json.loads((flat_dir / "manifest.json").read_text())
    assert manifest["model"]["id"] == MODEL and manifest["model"]["revision"] == bi_encoder.revision
    assert manifest["dim"] == 384 and manifest["normalized"] is True and manifest["metric"] == "inner_product"
    assert manifest["index"]["type"] == "flat" and manifest["corpus"]["size"] == len(docs)
    assert manifest["retrodistill_version"] and manifest["created"]
    assert json.loads((flat_dir / "ids.json").read_text()) == [d.doc_id for d in docs]
    assert not list(flat_dir.parent.glob(".flat.*")), "no temp folder is left beside the index"
    store = load_index_dir(flat_dir)
    want_scores, want_ids = exact(passages, queries, 10)
    hits = store.search(queries, 10)
    got_ids = np.array([[h.row for h in row] for row in hits])
    assert (got_ids == want_ids).mean() > 0.99
    np.testing.assert_allclose([[h.score for h in row] for row in hits], want_scores, atol=1e-5)
    first = store.docs.get([hits[0][0].row])[0]
    assert first == ds.corpus[hits[0][0].doc_id]


def test_existing_directory_needs_force_and_is_replaced_whole(flat_dir, scifact_slice, cache, bi_encoder, tmp_path):
    result = cli("index", "build", "--model", MODEL, "--corpus", str(scifact_slice), "--out", str(flat_dir))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--force" in result.stderr
    ds = load_dataset(str(scifact_slice))
    out = tmp_path / "copy"
    build_index_dir(out, bi_encoder, ds.corpus, "slice", "flat", cache_dir=cache, show_progress=False)
    build_index_dir(
        out, bi_encoder, ds.corpus, "slice", "ivf", {"nlist": 4}, cache_dir=cache, overwrite=True, show_progress=False
    )
    assert load_index_dir(out).manifest["index"]["type"] == "ivf"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]


def test_index_and_dense_retrievers_give_the_same_run(flat_dir, scifact_slice, cache):
    from retrodistill.retrieval import RETRIEVERS
    from retrodistill.retrieval.dense import DenseRetriever
    from retrodistill.retrieval.index_dir import IndexDirRetriever

    assert RETRIEVERS.get("index") is IndexDirRetriever
    ds = load_dataset(str(scifact_slice))
    dense = DenseRetriever(MODEL, cache_dir=str(cache), show_progress=False)
    dense.index(ds.corpus)
    via_index = IndexDirRetriever(str(flat_dir))
    via_index.index(ds.corpus)
    run_a = dense.retrieve(ds.judged_queries(), k=100, show_progress=False)
    run_b = via_index.retrieve(ds.judged_queries(), k=100, show_progress=False)
    assert run_a.keys() == run_b.keys()
    for qid in run_a:
        assert run_a[qid].keys() == run_b[qid].keys()
        np.testing.assert_allclose(list(run_a[qid].values()), [run_b[qid][d] for d in run_a[qid]], atol=1e-6)
    measures = ["nDCG@10", "R@100"]
    assert evaluate(run_a, ds.qrels, measures).aggregate == evaluate(run_b, ds.qrels, measures).aggregate
    with pytest.raises(ConfigError, match="index holds"):
        IndexDirRetriever(str(flat_dir)).index(dict(list(ds.corpus.items())[:10]))


def test_compare_cli_reports_recall_against_flat(flat_dir, scifact_slice, cache, bi_encoder, tmp_path, vectors):
    ds, _, _, queries = vectors
    hnsw = tmp_path / "hnsw"
    build_index_dir(hnsw, bi_encoder, ds.corpus, str(scifact_slice), "hnsw", {"M": 8, "efSearch": 16},
                    cache_dir=cache, show_progress=False)  # fmt: skip
    report = tmp_path / "cmp.json"
    result = cli("-q", "index", "compare", str(hnsw), str(flat_dir), "--queries", str(scifact_slice), "--k", "10",
                 "--output", str(report))  # fmt: skip
    assert result.returncode == 0, result.stderr
    got = json.loads(report.read_text())
    a, b = load_index_dir(hnsw), load_index_dir(flat_dir)
    expected = compare_indexes(a.index, b.index, queries, k=10).recall
    assert got["recall@10"] == pytest.approx(expected, abs=1e-4) and got["queries"] == len(queries)
    assert 0.5 < got["recall@10"] <= 1.0


KILL_CORPUS_DOCS = 96


def test_build_resumes_after_sigkill_and_matches_uninterrupted(scifact_slice, cache, tmp_path):
    lines = (scifact_slice / "corpus.jsonl").read_text().splitlines()[:KILL_CORPUS_DOCS]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(lines) + "\n")
    args = ["index", "build", "--model", MODEL, "--corpus", str(corpus), "--shard-size", "8"]
    reference = tmp_path / "reference"
    assert cli("-q", *args, "--out", str(reference), "--cache-dir", str(tmp_path / "c1")).returncode == 0

    out, cache2 = tmp_path / "resumed", tmp_path / "c2"
    proc = subprocess.Popen([*EXE, "-q", *args, "--out", str(out), "--cache-dir", str(cache2)], env=os.environ)
    deadline = time.time() + 600
    while time.time() < deadline and len(list(cache2.glob("embeddings/*/shard-*.npy"))) < 3:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(cache2.glob("embeddings/*/shard-*.npy")))
    assert 3 <= done < KILL_CORPUS_DOCS // 8, "the kill should land mid-way"
    assert not out.exists(), "a killed build leaves no index directory"

    result = cli("-q", *args, "--out", str(out), "--cache-dir", str(cache2))
    assert result.returncode == 0, result.stderr
    a, b = load_index_dir(reference), load_index_dir(out)
    assert a.ids == b.ids
    va, vb = a.index.index.reconstruct_n(0, a.index.ntotal), b.index.index.reconstruct_n(0, b.index.ntotal)
    np.testing.assert_allclose(va, vb, atol=1e-6)
    _, ia = a.index.search(va[:20], 5)
    _, ib = b.index.search(va[:20], 5)
    np.testing.assert_array_equal(ia, ib)
    assert not list(tmp_path.glob(".resumed.*")), "the killed build's temp folder is cleaned up"
