from __future__ import annotations

import pytest

from retrodistill.atomic import atomic_open
from retrodistill.data.trec import read_qrels, read_queries_tsv, read_run, write_qrels, write_run
from retrodistill.errors import DataError


def test_qrels_trec_and_beir_formats_with_crlf(tmp_path):
    trec = tmp_path / "qrels.txt"
    trec.write_text("1 0 d1 2\r\n1 0 d2 0\r\n2 0 d3 1\r\n", encoding="utf-8")
    beir = tmp_path / "test.tsv"
    beir.write_bytes(b"query-id\tcorpus-id\tscore\r\n1\td1\t2\r\n1\td2\t0\r\n2\td3\t1\r\n")
    expected = {"1": {"d1": 2, "d2": 0}, "2": {"d3": 1}}
    assert read_qrels(trec) == expected
    assert read_qrels(beir) == expected
    write_qrels(expected, tmp_path / "back.txt")
    assert read_qrels(tmp_path / "back.txt") == expected


def test_qrels_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("1 0 d1 1\n1 0 d2\n1 0 d3 x y\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.txt:2: expected 4 columns"):
        read_qrels(bad)
    grade = tmp_path / "grade.txt"
    grade.write_text("1 0 d1 1\n1 0 d2 high\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"grade\.txt:2: relevance grade 'high'"):
        read_qrels(grade)
    with pytest.raises(DataError, match="file not found"):
        read_qrels(tmp_path / "absent.txt")


def test_run_roundtrip_ranks_by_score(tmp_path):
    run = {"q1": {"a": 0.5, "b": 2.0, "c": -1.0}, "q2": {"x": 3.0}}
    path = tmp_path / "run.trec"
    write_run(run, path, tag="my system")
    lines = path.read_text().splitlines()
    assert lines[0] == "q1 Q0 b 1 2.000000 my_system"
    assert [line.split()[2] for line in lines[:3]] == ["b", "a", "c"]
    assert read_run(path) == run


def test_run_errors(tmp_path):
    path = tmp_path / "run.trec"
    path.write_text("q1 Q0 d1 1 0.5 tag\nq1 Q0 d2 2 nan? tag\n")
    with pytest.raises(DataError, match=r"run\.trec:2: score 'nan\?' is not a number"):
        read_run(path)
    path.write_text("q1 d1 0.5\n")
    with pytest.raises(DataError, match=r"run\.trec:1: expected 6 columns"):
        read_run(path)


def test_queries_tsv(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_bytes(b"19335\tanthropological definition of environment\r\n47923\taxon terminals\r\n")
    queries = read_queries_tsv(path)
    assert queries["47923"].text == "axon terminals"
    path.write_text("no tab here\n")
    with pytest.raises(DataError, match=r"q\.tsv:1"):
        read_queries_tsv(path)


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("good")
    with pytest.raises(RuntimeError), atomic_open(path) as handle:
        handle.write("half")
        raise RuntimeError("killed")
    assert path.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
