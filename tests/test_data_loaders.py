from __future__ import annotations

import gzip
import json
import logging
import shutil

import pytest

from retrodistill.data.beir import load_beir_folder
from retrodistill.data.load import load_dataset
from retrodistill.data.rankllm import load_rerank_task
from retrodistill.errors import DataError


def test_beir_slice_loads_with_crlf_qrels(scifact_slice):
    ds = load_dataset(str(scifact_slice), "test")
    assert len(ds.qrels) == 40
    assert len(ds.judged_queries()) == 40
    assert all(d in ds.corpus for docs in ds.qrels.values() for d in docs)
    assert not any("\r" in d for docs in ds.qrels.values() for d in docs)
    assert ds.meta["warnings"] == {}


def test_ir_datasets_id_matches_beir_folder(irds_home, data_dir):
    by_id = load_dataset("beir/scifact/test")
    by_folder = load_beir_folder(data_dir / "scifact", "test")
    assert len(by_id.corpus) == len(by_folder.corpus) == 5183
    assert by_id.qrels == by_folder.qrels
    assert len(by_id.qrels) == 300
    some = next(iter(by_folder.corpus))
    assert by_id.corpus[some] == by_folder.corpus[some]
    assert {q.query_id: q.text for q in by_id.judged_queries()} == {
        q.query_id: q.text for q in by_folder.judged_queries()
    }


def test_ir_datasets_errors(irds_home):
    with pytest.raises(DataError, match="has no qrels; name a split such as beir/scifact/test"):
        load_dataset("beir/scifact")
    with pytest.raises(DataError, match="unknown ir_datasets id 'beir/scifactt/test'"):
        load_dataset("beir/scifactt/test")


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_bad_json_line_is_named(scifact_slice, tmp_path):
    folder = _copy(scifact_slice, tmp_path / "ds")
    lines = (folder / "corpus.jsonl").read_text().splitlines()
    lines[6] = lines[6][:-5]
    (folder / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"corpus\.jsonl:7: invalid JSON"):
        load_dataset(str(folder))


def test_gzip_corpus_and_missing_files(scifact_slice, tmp_path):
    folder = _copy(scifact_slice, tmp_path / "ds")
    raw = (folder / "corpus.jsonl").read_bytes()
    (folder / "corpus.jsonl").unlink()
    (folder / "corpus.jsonl.gz").write_bytes(gzip.compress(raw))
    assert len(load_dataset(str(folder)).corpus) == len(raw.splitlines())
    (folder / "corpus.jsonl.gz").unlink()
    with pytest.raises(DataError, match=r"no corpus\.jsonl or corpus\.jsonl\.gz"):
        load_dataset(str(folder))
    with pytest.raises(DataError, match="no qrels for split 'dev'; available splits: test"):
        load_dataset(str(scifact_slice), "dev")
    with pytest.raises(DataError, match="folder not found"):
        load_dataset("./no/such/folder")


def test_empty_corpus_is_an_error(scifact_slice, tmp_path):
    folder = _copy(scifact_slice, tmp_path / "ds")
    (folder / "corpus.jsonl").write_text("\n")
    with pytest.raises(DataError, match="the corpus is empty"):
        load_dataset(str(folder))


def test_qrels_docs_missing_from_corpus_are_counted(scifact_slice, tmp_path, caplog):
    folder = _copy(scifact_slice, tmp_path / "ds")
    with open(folder / "qrels" / "test.tsv", "a", newline="") as handle:
        handle.write("1\tNOT-A-DOC\t1\r\n1\tALSO-NOT\t1\r\n")
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(str(folder))
    assert ds.meta["warnings"]["qrels_docs_not_in_corpus"] == 2
    assert "2 judgements name documents absent from the corpus" in caplog.text


def test_dl19_rerank_task(data_dir):
    dl = data_dir / "trec-dl-2019"
    task = load_rerank_task(
        dl / "2019qrels-pass.txt",
        dl / "rank_llm" / "BM25" / "retrieve_results_dl19.json.gz",
        dl / "msmarco-test2019-queries.tsv",
    )
    assert task.is_rerank_task
    assert len(task.qrels) == 43
    assert all(len(c) == 100 for c in task.candidates.values())
    assert all(d in task.corpus for c in task.candidates.values() for d in c)
    assert task.queries["264014"].text == "how long is life cycle of flea"


def test_rankllm_bad_file(tmp_path, data_dir):
    bad = tmp_path / "cands.json"
    bad.write_text(json.dumps([{"query": "x", "hits": [{"qid": 1, "docid": "d"}]}]))
    with pytest.raises(DataError, match="entry 0 is not a rank_llm candidate list"):
        load_rerank_task(data_dir / "trec-dl-2019" / "2019qrels-pass.txt", bad)


def test_text_files_decode_line_by_line_and_every_failure_names_the_file(tmp_path):
    from retrodistill.data.rankllm import read_rankllm_candidates
    from retrodistill.data.textfile import iter_jsonl, iter_lines
    from retrodistill.data.trec import read_qrels, read_run

    plain = tmp_path / "a.tsv"
    plain.write_bytes("\ufeffq1 0 d1 1\r\nq1 0 d2 0\r\n\r\nq2 0 d\u00e9 2\n".encode())
    assert read_qrels(plain) == {"q1": {"d1": 1, "d2": 0}, "q2": {"d\u00e9": 2}}  # BOM, CRLF, blank line
    packed = tmp_path / "a.tsv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert list(iter_lines(packed)) == list(iter_lines(plain))

    bad = tmp_path / "c.jsonl.gz"
    bad.write_bytes(gzip.compress(b'{"_id": "1", "text": "a"}\n{"_id": "2", "text": "caf\xe9"}\n'))
    with pytest.raises(DataError, match=r"c\.jsonl\.gz:2: not valid UTF-8 \(byte 0xe9 at column 26\)"):
        list(iter_jsonl(bad))
    run = tmp_path / "run.trec.gz"
    run.write_bytes(gzip.compress(b"q1 Q0 d1 1 2.0 x\n" * 500)[:-40])
    with pytest.raises(DataError, match=r"run\.trec\.gz: the gzip file is truncated"):
        read_run(run)
    fake = tmp_path / "cands.json.gz"
    fake.write_text("[]")
    with pytest.raises(DataError, match=r"cands\.json\.gz: not a gzip file"):
        read_rankllm_candidates(fake)
    (tmp_path / "folder.tsv").mkdir()
    with pytest.raises(DataError, match=r"folder\.tsv: is a folder, expected a file"):
        read_qrels(tmp_path / "folder.tsv")
