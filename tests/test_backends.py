"""Inference backends and length buckets: the bucketed torch path against sentence-transformers' own
``encode``, ONNX and OpenVINO float against torch, int8 close but different, the export cache and its checksum."""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest

from retrodistill.errors import ConfigError
from retrodistill.inference.buckets import bucket_length, length_batches

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
FLOAT_ENGINES = {"onnx"} | ({"openvino"} if importlib.util.find_spec("openvino") else set())
"""The float engines ``auto`` can measure here besides torch."""


def _texts(scifact_slice) -> list[str]:
    """Real queries and passages of very different lengths, interleaved."""
    queries = [json.loads(line)["text"] for line in (scifact_slice / "queries.jsonl").read_text("utf-8").splitlines()]
    docs = [json.loads(line)["text"] for line in (scifact_slice / "corpus.jsonl").read_text("utf-8").splitlines()]
    return [t for pair in zip(queries[:20], docs[:20], strict=True) for t in pair] + ["x"]


def test_bucket_length_rounds_up_within_the_limit():
    assert [bucket_length(n) for n in (1, 8, 9, 63, 64, 65, 97)] == [8, 8, 16, 64, 64, 96, 128]
    assert bucket_length(250, limit=256) == 256 and bucket_length(230, limit=240) == 240
    assert bucket_length(300, limit=256) == 300  # never below the real length


def test_length_batches_cover_every_text_once_with_bounded_shapes():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 300, size=500).tolist()
    groups = length_batches(lengths, max_batch=16, limit=256)
    members = [i for group, _ in groups for i in group]
    assert sorted(members) == list(range(500))
    for group, padded in groups:
        assert 1 <= len(group) <= 16
        assert padded >= max(lengths[i] for i in group)
        assert padded in {bucket_length(n, 256) for n in range(1, 300)}
        # a group never mixes texts whose buckets differ by more than 3/2
        assert min(bucket_length(lengths[i], 256) for i in group) > padded * 2 / 3
    with pytest.raises(ValueError):
        length_batches([3], max_batch=0)


def test_bucketed_torch_path_equals_sentence_transformers_encode(bi_encoder, scifact_slice):
    texts = _texts(scifact_slice)
    ours = bi_encoder.encode_passages(texts)
    theirs = bi_encoder.model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=2e-5)


def test_onnx_float_equals_torch_and_int8_is_close_but_other(tmp_path, monkeypatch, bi_encoder, scifact_slice):
    pytest.importorskip("onnxruntime")
    from retrodistill.students.bi_encoder import BiEncoder

    monkeypatch.setenv("RETRODISTILL_CACHE", str(tmp_path / "cache"))
    texts = _texts(scifact_slice)
    reference = bi_encoder.encode_passages(texts)
    onnx = BiEncoder(MODEL, batch_size=32, backend="onnx")
    np.testing.assert_allclose(onnx.encode_passages(texts), reference, atol=2e-5)
    assert onnx.fingerprint() == bi_encoder.fingerprint()  # the same vectors may share an embedding cache

    int8 = BiEncoder(MODEL, batch_size=32, backend="onnx-int8")
    vectors = int8.encode_passages(texts)
    cosines = (vectors * reference).sum(1)
    assert cosines.min() > 0.95 and np.abs(vectors - reference).max() > 1e-3
    assert int8.fingerprint() != bi_encoder.fingerprint()

    graphs = sorted(p.name for p in (tmp_path / "cache" / "onnx").rglob("*.onnx"))
    assert graphs == ["model-int8.onnx", "model.onnx"]  # one folder per weights, both graphs in it
    graph = next((tmp_path / "cache" / "onnx").rglob("model.onnx"))
    stamp = graph.stat().st_mtime_ns
    BiEncoder(MODEL, backend="onnx").encode_queries(["cached"])
    assert graph.stat().st_mtime_ns == stamp  # exported once

    with open(graph, "r+b") as handle:  # one flipped byte: refused on load, with the fix
        handle.seek(os.path.getsize(graph) // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ConfigError, match=r"checksum.*delete"):
        BiEncoder(MODEL, backend="onnx").encode_queries(["damaged"])


def test_openvino_runs_the_same_export_with_torchs_vectors(tmp_path, monkeypatch, bi_encoder, scifact_slice):
    pytest.importorskip("openvino")
    from retrodistill.students.bi_encoder import BiEncoder

    monkeypatch.setenv("RETRODISTILL_CACHE", str(tmp_path / "cache"))
    texts = _texts(scifact_slice)
    openvino = BiEncoder(MODEL, batch_size=32, backend="openvino")
    vectors = openvino.encode_passages(texts)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, bi_encoder.encode_passages(texts), atol=2e-5)  # float32, not bfloat16
    assert openvino.fingerprint() == bi_encoder.fingerprint()
    BiEncoder(MODEL, backend="onnx").encode_queries(["shared"])
    graphs = [p.relative_to(tmp_path) for p in (tmp_path / "cache" / "onnx").rglob("*.onnx")]
    assert len(graphs) == 1 and graphs[0].name == "model.onnx"  # one export, both engines read it


def test_openvino_bf16_runs_bfloat16_where_native_with_its_own_fingerprint(
    tmp_path, monkeypatch, bi_encoder, scifact_slice
):
    openvino = pytest.importorskip("openvino")
    from retrodistill.students.bi_encoder import BiEncoder

    monkeypatch.setenv("RETRODISTILL_CACHE", str(tmp_path / "cache"))
    texts = _texts(scifact_slice)
    reference = bi_encoder.encode_passages(texts)
    bf16 = BiEncoder(MODEL, batch_size=32, backend="openvino-bf16")
    vectors = bf16.encode_passages(texts)
    assert vectors.dtype == np.float32 and vectors.shape == reference.shape
    assert (vectors * reference).sum(1).min() > 0.999
    assert bf16.fingerprint() != bi_encoder.fingerprint()  # other vectors: its own embedding cache
    precision = bf16.forward().graph.precision
    native = "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    assert precision == ("bf16" if native else "f32")  # the hint is taken where the CPU has bfloat16, else float32
    if precision == "bf16":
        assert np.abs(vectors - reference).max() > 1e-5  # bfloat16 arithmetic, not float32 under another name


def test_auto_measures_and_keeps_a_float_backend(tmp_path, monkeypatch, scifact_slice, bi_encoder):
    pytest.importorskip("onnxruntime")
    from retrodistill.students.bi_encoder import BiEncoder

    monkeypatch.setenv("RETRODISTILL_CACHE", str(tmp_path / "cache"))
    encoder = BiEncoder(MODEL, batch_size=32, backend="auto")
    texts = _texts(scifact_slice)[:10]
    np.testing.assert_allclose(encoder.encode_queries(texts), bi_encoder.encode_queries(texts), atol=2e-5)
    assert encoder.backend in {"torch"} | FLOAT_ENGINES
    assert set(encoder.backend_report) == {"torch"} | FLOAT_ENGINES
    assert all(isinstance(v, float) and v > 0 for v in encoder.backend_report.values())
    assert encoder.settings()["backend"] == encoder.backend  # workers get the measured choice


def test_unknown_backend_is_one_line():
    from retrodistill.students.bi_encoder import BiEncoder

    with pytest.raises(ConfigError, match="unknown inference backend 'tensorrt'; choose one of: auto, torch"):
        BiEncoder(MODEL, backend="tensorrt")


@pytest.fixture(scope="module")
def cross_encoder_cache(tmp_path_factory):
    """One RETRODISTILL_CACHE for the cross-encoder tests, so its ONNX float export is made once."""
    return tmp_path_factory.mktemp("ce-cache")


def test_cross_encoder_onnx_scores_equal_torch_and_int8_keeps_the_order(
    monkeypatch, cross_encoder_dir, cross_encoder_cache, scifact_slice
):
    pytest.importorskip("onnxruntime")
    from scipy.stats import spearmanr

    from retrodistill.teachers.cross_encoder import CrossEncoderTeacher

    monkeypatch.setenv("RETRODISTILL_CACHE", str(cross_encoder_cache))
    texts = _texts(scifact_slice)
    pairs = [(texts[i], texts[i + 1]) for i in range(0, 40, 2)] + [(texts[0], texts[i]) for i in range(1, 41, 3)]
    torch_teacher = CrossEncoderTeacher(str(cross_encoder_dir), dtype="float32", device="cpu")
    reference = np.array(torch_teacher._score_pairs(pairs))
    onnx = CrossEncoderTeacher(str(cross_encoder_dir), device="cpu", backend="onnx")
    np.testing.assert_allclose(np.array(onnx._score_pairs(pairs)), reference, atol=1e-4)
    assert onnx.spec.fingerprint() == torch_teacher.spec.fingerprint()  # same scores, same store

    int8 = CrossEncoderTeacher(str(cross_encoder_dir), device="cpu", backend="onnx-int8")
    quantised = np.array(int8._score_pairs(pairs))
    assert spearmanr(quantised, reference).statistic > 0.9
    assert int8.spec.fingerprint() != torch_teacher.spec.fingerprint()
    with pytest.raises(ConfigError, match="backend must be one of auto, torch, onnx, onnx-int8, openvino"):
        CrossEncoderTeacher(str(cross_encoder_dir), backend="tensorrt")
    if "openvino" in FLOAT_ENGINES:
        openvino = CrossEncoderTeacher(str(cross_encoder_dir), device="cpu", backend="openvino")
        np.testing.assert_allclose(np.array(openvino._score_pairs(pairs)), reference, atol=1e-3)
        assert openvino.spec.fingerprint() == torch_teacher.spec.fingerprint()
        bf16 = CrossEncoderTeacher(str(cross_encoder_dir), device="cpu", backend="openvino-bf16")
        assert spearmanr(np.array(bf16._score_pairs(pairs)), reference).statistic > 0.9
        assert bf16.spec.fingerprint() != torch_teacher.spec.fingerprint()  # its own store
        assert bf16.spec.options["backend"] == "openvino-bf16"


def test_cross_encoder_auto_times_both_engines_and_keeps_torchs_scores(
    monkeypatch, cross_encoder_dir, cross_encoder_cache, scifact_slice
):
    pytest.importorskip("onnxruntime")
    import retrodistill.inference.onnx as onnx_module
    from retrodistill.specs import parse_spec
    from retrodistill.teachers import bind_teacher
    from retrodistill.teachers.cross_encoder import CrossEncoderTeacher

    monkeypatch.setenv("RETRODISTILL_CACHE", str(cross_encoder_cache))
    texts = _texts(scifact_slice)
    pairs = [(texts[i], texts[i + 1]) for i in range(0, 16, 2)]
    torch_teacher = CrossEncoderTeacher(str(cross_encoder_dir), dtype="float32", device="cpu")
    reference = np.array(torch_teacher._score_pairs(pairs))
    auto = bind_teacher(parse_spec(f"cross-encoder:{cross_encoder_dir},backend=auto,dtype=float32")).build()
    scores = np.array(auto._score_pairs(pairs))
    report = auto.backend_report
    assert set(report) == {"torch"} | FLOAT_ENGINES and all(isinstance(v, float) for v in report.values())
    assert auto.engine == min(report, key=report.__getitem__)  # the fastest measured
    np.testing.assert_allclose(scores, reference, atol=1e-4)
    assert auto.spec.fingerprint() == torch_teacher.spec.fingerprint()  # either engine, the same store

    def cannot_trace(*args, **kwargs):
        raise RuntimeError("unsupported operator aten::made_up")

    monkeypatch.setattr(onnx_module, "exported_graph", cannot_trace)
    fallback = CrossEncoderTeacher(str(cross_encoder_dir), dtype="float32", device="cpu", backend="auto")
    np.testing.assert_allclose(fallback._score_pairs(pairs[:3]), reference[:3], atol=1e-5)
    assert fallback.engine == "torch"
    for engine in FLOAT_ENGINES:
        assert fallback.backend_report[engine].startswith("export failed: RuntimeError: unsupported operator")
    bf16 = CrossEncoderTeacher(str(cross_encoder_dir), dtype="bfloat16", device="cpu", backend="auto")
    bf16._score_pairs(pairs[:1])
    assert bf16.engine == "torch" and "bfloat16" in bf16.backend_report["torch"]  # ONNX would change its scores


def test_an_index_encoded_in_int8_is_queried_in_int8(tmp_path, monkeypatch, scifact_slice):
    pytest.importorskip("onnxruntime")
    from retrodistill.data.load import load_dataset
    from retrodistill.index.store import build_index_dir, load_index_dir
    from retrodistill.serve.service import SearchService
    from retrodistill.serve.settings import ServeSettings
    from retrodistill.students.bi_encoder import BiEncoder

    monkeypatch.setenv("RETRODISTILL_CACHE", str(tmp_path / "cache"))
    corpus = dict(list(load_dataset(str(scifact_slice)).corpus.items())[:60])
    int8 = BiEncoder(MODEL, backend="onnx-int8")
    out = tmp_path / "int8-index"
    build_index_dir(out, int8, corpus, "slice", "flat", cache_dir=tmp_path / "emb", show_progress=False)
    assert load_index_dir(out).manifest["model"]["backend"] == "onnx-int8"
    service = SearchService(ServeSettings(index_dir=str(out)))
    assert service.encoder.backend == "onnx-int8"
    doc = next(iter(corpus.values()))
    top = service.search_batch([(doc.text[:200], 1)])[0][0]
    assert top.doc_id == doc.doc_id  # int8 queries find int8 passages
    # dynamic int8 scales activations per batch, so a passage encoded among others differs a little
    # from the same passage encoded alone: equal within 0.02, not to float precision
    want = int8.encode_queries([doc.text[:200]]) @ int8.encode_passages([doc.full_text()]).T
    assert abs(top.score - want.item()) < 0.02


def test_auto_serves_on_torch_when_the_export_fails(monkeypatch, bi_encoder):
    """A model the exporter cannot trace (simulated at the export call) leaves auto on torch, with the reason."""
    pytest.importorskip("onnxruntime")
    import retrodistill.inference.onnx as onnx_module
    from retrodistill.students.bi_encoder import BiEncoder

    def cannot_trace(*args, **kwargs):
        raise RuntimeError("unsupported operator aten::made_up")

    monkeypatch.setattr(onnx_module, "exported_graph", cannot_trace)
    encoder = BiEncoder(MODEL, backend="auto")
    vectors = encoder.encode_queries(["vitamin d and bone density"])
    np.testing.assert_allclose(vectors, bi_encoder.encode_queries(["vitamin d and bone density"]), atol=2e-5)
    assert encoder.backend == "torch"
    assert set(encoder.backend_report) == FLOAT_ENGINES  # every engine failed, each with its reason
    for engine in FLOAT_ENGINES:
        assert encoder.backend_report[engine].startswith("export failed: RuntimeError: unsupported operator")
