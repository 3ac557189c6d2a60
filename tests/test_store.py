"""The score store: keys, no duplicates, teacher identity, read-back as runs and training groups."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from retrodistill.errors import ConfigError, DataError
from retrodistill.teachers.records import Preference, ScoredPair, TeacherSpec
from retrodistill.teachers.store import ScoreStore, read_spec

CE = TeacherSpec("cross-encoder", "models/ce", "models/ce#sha256:abc", "pointwise", "logit", "", {"max_length": 64})
PRP = TeacherSpec("llm", "m", "m@1", "pairwise", "prob-a", "{query} {passage_a} {passage_b}", {"chat": True})


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_rows_are_unique_and_survive_reopening(tmp_path):
    path = tmp_path / "s.sqlite"
    with ScoreStore(path, CE) as store:
        assert store.add([ScoredPair("q1", "d1", 1.5), ScoredPair("q1", "d2", -0.5)]) == 2
        assert store.add([ScoredPair("q1", "d1", 9.0), ScoredPair("q2", "d1", 0.25)]) == 1
        assert len(store) == 3
    with ScoreStore(path, CE) as store:
        assert store.keys() == {("q1", "d1", ""), ("q1", "d2", ""), ("q2", "d1", "")}
        assert store.scores() == {"q1": {"d1": 1.5, "d2": -0.5}, "q2": {"d1": 0.25}}
        assert store.complete_queries({"q1": ["d1", "d2"], "q2": ["d1", "d3"]}) == {"q1"}
    rows = sqlite3.connect(path).execute("SELECT COUNT(*), COUNT(DISTINCT qid || '/' || docid) FROM scores").fetchone()
    assert rows == (3, 3)


def test_another_teacher_is_refused_and_the_file_untouched(tmp_path):
    path = tmp_path / "s.sqlite"
    with ScoreStore(path, CE) as store:
        store.add([ScoredPair("q1", "d1", 1.0)])
    before = _sha(path)
    other = TeacherSpec(**{**CE.to_dict(), "revision": "models/ce#sha256:def"})
    with pytest.raises(ConfigError, match="another teacher"):
        ScoreStore(path, other)
    assert _sha(path) == before
    assert read_spec(path) == CE
    with ScoreStore.open(path) as store:
        assert store.spec.fingerprint() == CE.fingerprint() and len(store) == 1


def test_a_file_that_is_not_a_store_is_a_data_error(tmp_path):
    bogus = tmp_path / "x.sqlite"
    bogus.write_text("not sqlite at all, just text\n" * 10)
    with pytest.raises(DataError):
        ScoreStore.open(bogus)
    with pytest.raises(DataError, match="not found"):
        ScoreStore.open(tmp_path / "missing.sqlite")


def test_pairwise_rows_aggregate_to_a_run(tmp_path):
    with ScoreStore(tmp_path / "p.sqlite", PRP) as store:
        store.add(
            [
                Preference("q", "a", "b", 0.8),  # P(a > b) = (0.8 + 1 - 0.4) / 2 = 0.7
                Preference("q", "b", "a", 0.4),
                Preference("q", "b", "c", 0.9),  # P(b > c) = (0.9 + 1 - 0.3) / 2 = 0.8
                Preference("q", "c", "b", 0.3),
            ]
        )
        run = store.run()
    # first-appearance order a, b, c gives tie-breaks 0, -1e-6, -2e-6
    assert run["q"] == pytest.approx({"a": 0.7, "b": 0.3 + 0.8 - 1e-6, "c": 0.2 - 2e-6}, abs=1e-12)


def test_training_groups_sort_candidates_and_take_positives_from_qrels(tmp_path):
    with ScoreStore(tmp_path / "s.sqlite", CE) as store:
        store.add([ScoredPair("q1", "d1", 0.1), ScoredPair("q1", "d2", 2.0), ScoredPair("q1", "d3", 1.0)])
        store.add([ScoredPair("q2", "d9", 0.0)])
        groups = {g.qid: g for g in store.training_groups({"q1": {"d3": 2, "d1": 0}})}
    assert groups["q1"].doc_ids == ("d2", "d3", "d1") and groups["q1"].scores == (2.0, 1.0, 0.1)
    assert groups["q1"].positives == ("d3",)
    assert groups["q2"].positives == ()


def _readonly_folder(tmp_path):
    """A folder this process cannot write (chmod 555), or None where permission bits do not bind (root)."""
    import os

    folder = tmp_path / "ro"
    folder.mkdir()
    os.chmod(folder, 0o555)
    if os.access(folder, os.W_OK):
        os.chmod(folder, 0o755)
        return None
    return folder


def test_a_new_store_in_a_folder_that_cannot_be_written_is_refused_up_front(tmp_path, capsys):
    import os

    # /proc/sys refuses writes even to root; a chmod-555 folder refuses everyone else
    folders = [p for p in ("/proc/sys",) if os.path.isdir(p) and not os.access(p, os.W_OK)]
    if (folder := _readonly_folder(tmp_path)) is not None:
        folders.append(folder)
    if not folders:
        pytest.skip("no folder here refuses writes to this user")
    for folder in folders:
        path = f"{folder}/sub/s.sqlite"
        expected = r"cannot write the score store .*s\.sqlite: the folder .* is not writable"
        with pytest.raises(ConfigError, match=expected):
            ScoreStore.check(path, CE)
        with pytest.raises(ConfigError, match="not writable"):
            ScoreStore(path, CE)
    from retrodistill.cli.main import main

    teach = ["teach", "-t", "cross-encoder:sentence-transformers/all-MiniLM-L6-v2", "-s", path, "-d", "x"]
    assert main(teach) == 2  # refused before the dataset ("x") is even looked at, and before any model loads
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"retrodistill: error: cannot write the score store {path}")


def test_a_finished_store_in_a_read_only_folder_reads_but_refuses_writing(tmp_path):
    import os

    folder = tmp_path / "ro"
    with ScoreStore(folder / "s.sqlite", CE) as store:
        store.add([ScoredPair("q1", "d1", 1.0)])
    os.chmod(folder, 0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("permission bits do not bind this user (root)")
        with ScoreStore.open(folder / "s.sqlite") as store:
            assert store.scores() == {"q1": {"d1": 1.0}}
        with pytest.raises(ConfigError, match="is not writable; choose a --store path in a writable folder"):
            ScoreStore.check(folder / "s.sqlite", CE)
    finally:
        os.chmod(folder, 0o755)


def test_a_corrupt_store_is_one_line_and_stays_as_it_was(tmp_path, capsys):
    import os

    from retrodistill.cli.main import main

    path = tmp_path / "s.sqlite"
    path.write_bytes(os.urandom(4096))
    before = _sha(path)
    with pytest.raises(DataError, match="not a retrodistill score store"):
        ScoreStore.check(path, CE)
    with pytest.raises(DataError, match="not a retrodistill score store"):
        ScoreStore.open(path)
    teach = ["teach", "-t", "cross-encoder:sentence-transformers/all-MiniLM-L6-v2", "-s", str(path), "-d", "x"]
    assert main(teach) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"retrodistill: error: {path}: not a retrodistill score store")
    assert _sha(path) == before and sorted(p.name for p in tmp_path.iterdir()) == ["s.sqlite"]
    folder = tmp_path / "dir.sqlite"
    folder.mkdir()
    with pytest.raises(ConfigError, match="is a folder; --store takes a file path"):
        ScoreStore.check(folder, CE)
