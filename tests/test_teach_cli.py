"""``retrodistill teach`` end to end: resume after SIGKILL, cheap re-runs, bad input, teachers in eval."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from retrodistill.cli.main import main

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="session")
def tiny_ce(tmp_path_factory):
    """An untrained cross-encoder head on all-MiniLM-L6-v2, seeded and saved: identical weights in every process."""
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(1234)
    folder = tmp_path_factory.mktemp("tiny-ce")
    CrossEncoder(MODEL, num_labels=1, max_length=64).save(str(folder))
    return folder


def _teach(store, dataset, teacher, *extra: str) -> list[str]:
    return ["teach", "--teacher", teacher, "--store", str(store), "--dataset", str(dataset), "--depth", "10", *extra]


def _teach10(store, dataset, teacher) -> list[str]:
    return _teach(store, dataset, teacher, "--max-queries", "10")


def _rows(store) -> list[tuple[str, str, float]]:
    con = sqlite3.connect(store)
    try:
        return con.execute("SELECT qid, docid, score FROM scores ORDER BY qid, docid").fetchall()
    finally:
        con.close()


def _count(store) -> int:
    if not store.exists():
        return 0
    try:
        con = sqlite3.connect(store, timeout=0.2)
        try:
            return con.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:
        return 0


def test_teach_resumes_after_sigkill_with_nothing_lost_or_duplicated(tiny_ce, scifact_slice, tmp_path, capsys):
    teacher = f"cross-encoder:{tiny_ce},batch_size=8,chunk_size=5"
    whole = tmp_path / "whole.sqlite"
    assert main(["-q", *_teach10(whole, scifact_slice, teacher)]) == 0
    expected = _rows(whole)
    assert len(expected) == 100  # 10 queries x top-10 (every slice query has >= 10 BM25 hits)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["scored_now"] == 100 and summary["rows_in_store"] == 100

    killed = tmp_path / "killed.sqlite"
    cmd = [sys.executable, "-m", "retrodistill.cli.main", "-q", *_teach10(killed, scifact_slice, teacher)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy())
    while proc.poll() is None and _count(killed) < 15:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    at_kill = _count(killed)
    assert 0 < at_kill < 100, f"the kill came too late or too early ({at_kill} rows)"

    assert main(["-q", *_teach10(killed, scifact_slice, teacher)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["scored_now"] == 100 - at_kill
    resumed = _rows(killed)
    assert [(q, d) for q, d, _ in resumed] == [(q, d) for q, d, _ in expected]  # same keys, none twice
    # batches are length-sorted within a chunk, so padding (and the last float bits) may differ after a resume
    assert max(abs(a[2] - b[2]) for a, b in zip(resumed, expected, strict=True)) < 1e-4


def test_a_finished_job_is_skipped_without_loading_the_model(tiny_ce, scifact_slice, tmp_path, capsys, monkeypatch):
    from retrodistill.teachers.cross_encoder import CrossEncoderTeacher

    store = tmp_path / "s.sqlite"
    teacher = f"cross-encoder:{tiny_ce}"
    assert main(_teach(store, scifact_slice, teacher, "--max-queries", "3")) == 0
    capsys.readouterr()
    monkeypatch.setattr(CrossEncoderTeacher, "model", property(lambda self: pytest.fail("the model was loaded")))
    assert main(_teach(store, scifact_slice, teacher, "--max-queries", "3")) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["scored_now"] == 0 and summary["rows_in_store"] == 30
    assert "nothing to do" in err
    side = json.loads((tmp_path / "s.sqlite.json").read_text())
    assert side["teacher"]["semantics"] == "logit" and side["teacher"]["revision"].endswith(
        hashlib.sha256((tiny_ce / "model.safetensors").read_bytes()).hexdigest()[:16]
    )


def test_force_positives_adds_judged_documents(tiny_ce, scifact_slice, tmp_path, capsys):
    from retrodistill.data.load import load_dataset
    from retrodistill.training.candidates import gather_candidates

    data = load_dataset(str(scifact_slice), "test")
    lists = gather_candidates(data, ["bm25s"], 2, force_positives=True, show_progress=False)
    for qid, ids in lists.items():
        assert {d for d, g in data.qrels[qid].items() if g > 0} <= set(ids)
        assert len(ids) <= 2 + len(data.qrels[qid])


def test_teach_returns_what_it_did_and_resumes(tiny_ce, scifact_slice, tmp_path):
    """The one teach() behind the CLI and distill: its record counts pairs, new scores and store rows."""
    from retrodistill.data.load import load_dataset
    from retrodistill.teachers import build_teacher
    from retrodistill.training.teach import teach

    data = load_dataset(str(scifact_slice), "test")
    qids = [q.query_id for q in data.judged_queries()[:3]]
    others = [d for d in sorted(data.corpus) if all(d not in data.qrels[q] for q in qids)]
    candidates = {q: sorted(data.qrels[q])[:1] + others[:4] for q in qids}
    pairs = sum(len(ids) for ids in candidates.values())
    store = tmp_path / "s.sqlite"
    first = teach(build_teacher(f"cross-encoder:{tiny_ce}"), data, candidates, store, show_progress=False)
    assert (first.queries, first.pairs, first.scored_now, first.rows_in_store) == (3, pairs, pairs, pairs)
    assert first.units_per_s > 0 and first.listwise_repairs == {}
    half = {q: candidates[q] for q in qids[:2]} | {qids[2]: candidates[qids[2]] + [others[4]]}
    second = teach(build_teacher(f"cross-encoder:{tiny_ce}"), data, half, store, show_progress=False)
    assert (second.pairs, second.scored_now, second.rows_in_store) == (pairs + 1, 1, pairs + 1)
    third = teach(build_teacher(f"cross-encoder:{tiny_ce}"), data, half, store, show_progress=False)
    assert third.scored_now == 0 and third.units_per_s is None and third.model_load_seconds == 0.0


def _fails(argv, capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("retrodistill: error: ")
    return err


def test_bad_input_is_one_clear_line_and_the_store_untouched(tiny_ce, scifact_slice, tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    assert "unknown teacher 'mono'" in _fails(_teach(store, scifact_slice, "mono:x"), capsys)
    run = tmp_path / "run.trec"
    run.write_text("1 Q0 not-a-doc 1 3.0 x\n1 Q0 also-missing 2 2.0 x\n")
    err = _fails(_teach(store, scifact_slice, f"cross-encoder:{tiny_ce}", "--candidates", str(run)), capsys)
    assert "2 candidate documents are not in the corpus" in err
    err = _fails(_teach(store, scifact_slice, "llm:m,mode=prp,template={query} {passage_a}"), capsys)
    assert "lacks {passage_b}" in err
    assert not store.exists()

    assert main(["-q", *_teach(store, scifact_slice, f"cross-encoder:{tiny_ce}", "--max-queries", "1")]) == 0
    capsys.readouterr()
    before = hashlib.sha256(store.read_bytes()).hexdigest()
    err = _fails(_teach(store, scifact_slice, f"cross-encoder:{tiny_ce},max_length=32"), capsys)
    assert "holds scores of another teacher" in err
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before


def test_cross_encoder_reranker_in_eval_matches_the_store(tiny_ce, scifact_slice, tmp_path, capsys):
    from retrodistill.data.load import load_dataset
    from retrodistill.eval.systems import bind_system
    from retrodistill.specs import parse_spec
    from retrodistill.teachers.store import ScoreStore
    from retrodistill.training.candidates import gather_candidates

    store = tmp_path / "s.sqlite"
    assert main(["-q", *_teach(store, scifact_slice, f"cross-encoder:{tiny_ce}", "--max-queries", "4")]) == 0
    data = load_dataset(str(scifact_slice), "test")
    lists = gather_candidates(data, ["bm25s"], 10, max_queries=4, show_progress=False)
    candidates = {q: {d: -float(i) for i, d in enumerate(ids)} for q, ids in lists.items()}
    reranker = bind_system(parse_spec(f"cross-encoder:{tiny_ce}"), rerank_mode=True).build()
    run = reranker.rerank(data.queries, candidates, data.corpus, depth=6, show_progress=False)
    stored = ScoreStore.open(store).scores()
    for q, ids in lists.items():
        assert set(run[q]) == set(ids)
        assert all(run[q][d] == pytest.approx(stored[q][d], abs=1e-4) for d in ids[:6])
        assert sorted(ids[6:], key=lambda d: -run[q][d]) == ids[6:]  # the rest keep their order below
        assert max(run[q][d] for d in ids[6:]) < min(run[q][d] for d in ids[:6])


def test_teacher_train_distills_from_a_store_and_resumes(tiny_ce, scifact_slice, tmp_path, capsys):
    import torch

    from retrodistill.training.checkpoint import Checkpoints
    from retrodistill.training.teacher import TrainConfig, train

    store = tmp_path / "s.sqlite"
    assert main(["-q", *_teach(store, scifact_slice, f"cross-encoder:{tiny_ce}", "--max-queries", "6")]) == 0
    base = dict(dataset=str(scifact_slice), split="test", eval_split=None, output=str(tmp_path / "student-ce"))
    base.update(base_model=str(tiny_ce), loss="distill", teacher_store=str(store), negatives=3, queries_per_step=2)
    base.update(max_length=32, checkpoint_every=1, log_every=1)
    first = train(TrainConfig(**base, max_steps=2), show_progress=False)
    assert first["steps"] == 2 and first["train_queries"] == 6
    resumed = train(TrainConfig(**base, max_steps=3), show_progress=False)
    out = tmp_path / "student-ce"
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-2", "step-3"]  # the last two kept
    state, history = Checkpoints.load(out / "checkpoints" / "step-3")
    assert resumed["steps"] == 3 and state["scheduler"]["last_epoch"] == 3
    assert [h["step"] for h in history] == [1, 2, 3]  # resumed at step 2, not from scratch
    assert torch.load(out / "checkpoints" / "step-3" / "state.pt", weights_only=True).keys() == state.keys()
    assert (out / "model" / "model.safetensors").is_file() and (out / "curve.png").is_file()
    assert json.loads((out / "config.json").read_text())["config"]["loss"] == "distill"


class _Poison:
    """Unpickling this calls open(marker, "w"): the file appears only if the loader runs pickled code."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_poisoned_checkpoint_is_refused_and_its_code_never_runs(scifact_slice, tmp_path):
    import pickle

    out, marker = tmp_path / "ce", tmp_path / "pwned"
    step = out / "checkpoints" / "step-1"
    step.mkdir(parents=True)
    (step / "state.pt").write_bytes(pickle.dumps({"optimizer": _Poison(marker)}))
    (step / "history.json").write_text("[]")
    config = tmp_path / "train.json"
    config.write_text(
        json.dumps(
            dict(dataset=str(scifact_slice), split="test", eval_split=None, output=str(out), negatives=3),
        )
    )
    cmd = [sys.executable, "-m", "retrodistill.cli.main", "-q", "teacher", "train", "--config", str(config)]
    done = subprocess.run([*cmd, "--max-steps", "2", "--max-length", "32"], capture_output=True, text=True)
    assert done.returncode == 2, done.stderr[-2000:]
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("retrodistill: error: "), done.stderr[-2000:]
    assert str(step / "state.pt") in err[0] and "refused to load" in err[0]
    assert not marker.exists()
    assert not (out / "model").exists()


def test_bfloat16_is_its_own_teacher_and_ranks_like_float32(tiny_ce, scifact_slice):
    from scipy.stats import spearmanr

    from retrodistill.data.load import load_dataset
    from retrodistill.errors import ConfigError
    from retrodistill.teachers.cross_encoder import CrossEncoderTeacher

    with pytest.raises(ConfigError, match="dtype"):
        CrossEncoderTeacher(str(tiny_ce), dtype="float16")
    fp32 = CrossEncoderTeacher(str(tiny_ce), dtype="float32")
    bf16 = CrossEncoderTeacher(str(tiny_ce), dtype="bfloat16")
    assert "dtype" not in fp32.spec.options and bf16.spec.options["dtype"] == "bfloat16"
    assert fp32.spec.fingerprint() != bf16.spec.fingerprint()  # stored apart, never mixed in one store
    data = load_dataset(str(scifact_slice), "test")
    query = next(iter(data.queries.values())).text
    pairs = [(query, doc.full_text()) for doc in list(data.corpus.values())[:24]]
    a, b = fp32._score_pairs(pairs), bf16._score_pairs(pairs)
    assert a != b  # autocast really ran
    assert spearmanr(a, b).correlation > 0.98


def test_groups_with_several_positives_and_the_eval_split_of_an_ir_datasets_id(tmp_path):
    import random

    from retrodistill.training.teacher import TrainConfig, _sample, eval_dataset_id

    config = TrainConfig(dataset="beir/nfcorpus/train", output=str(tmp_path), positives=3, negatives=4)
    assert eval_dataset_id(config) == "beir/nfcorpus/test"
    assert eval_dataset_id(config.model_copy(update={"eval_dataset": "beir/nfcorpus/dev"})) == "beir/nfcorpus/dev"
    folder = TrainConfig(dataset=str(tmp_path), split="train", output=str(tmp_path))
    assert eval_dataset_id(folder) == str(tmp_path)  # a BEIR folder takes the split as an argument
    qrels = {"p1": 1, "p2": 1, "p3": 1, "p4": 1, "n1": 0}
    group = ("q", {d: 1.0 for d in ("p1", "p2", "p3", "p4")}, ["p2", "n1", "x1", "x2", "x3", "x4"])
    ids, k = _sample(config, group, qrels, random.Random(0), ["c1", "c2"])
    assert k == 3 and len(ids) == 7 and len(set(ids)) == 7
    assert set(ids[:3]) <= {"p1", "p2", "p3", "p4"}
    assert set(ids[3:]) <= {"n1", "x1", "x2", "x3", "x4"}  # negatives are never judged positives


def test_distill_groups_mixed_with_bm25_and_their_errors(scifact_slice, bm25_store, tmp_path):
    import random
    import statistics

    from pydantic import ValidationError

    from retrodistill.data.load import load_dataset
    from retrodistill.errors import ConfigError
    from retrodistill.teachers.store import ScoreStore
    from retrodistill.training.teacher import TrainConfig, _groups, _sample

    data = load_dataset(str(scifact_slice), "test")
    base = dict(dataset=str(scifact_slice), split="test", output=str(tmp_path), loss="distill", negatives=4)
    config = TrainConfig(**base, teacher_store=str(bm25_store), teacher_interpolate=0.25)
    with ScoreStore.open(bm25_store) as store:
        stored = store.run()
    groups = _groups(config, data, show_progress=False)
    assert {q for q, _, _ in groups} == {q for q in stored if q in data.queries}
    for qid, targets, ranked in groups:
        docs = stored[qid]
        mean, sd = statistics.fmean(docs.values()), statistics.pstdev(docs.values())
        # The fixture's teacher is bm25s itself, so every mix W * z(teacher) + (1 - W) * z(bm25s) is z(bm25s).
        assert [targets[d] for d in ranked] == pytest.approx([(docs[d] - mean) / sd for d in ranked], abs=1e-9)
        assert ranked == sorted(docs, key=lambda d: (-docs[d], d))
    ids, target = _sample(config, groups[0], {}, random.Random(0), [])
    assert len(ids) == 5 == len(set(ids)) and target == [groups[0][1][d] for d in ids]
    boosted = _groups(config.model_copy(update={"label_boost": 2.0}), data, show_progress=False)
    judged = 0
    for (qid, plain, _), (_, targets, _) in zip(groups, boosted, strict=True):
        for d, value in targets.items():
            grade = max(data.qrels[qid].get(d, 0), 0)
            judged += grade > 0
            assert value == pytest.approx(plain[d] + 2.0 * grade, abs=1e-12)
    assert judged > 0
    for bad in ({"teacher_interpolate": 0.5}, {"label_boost": 1.0}):
        with pytest.raises(ValidationError, match="set loss to distill"):
            TrainConfig(**{**base, "loss": "groupwise"}, **bad)
    with pytest.raises(ConfigError, match="not found; create it with `retrodistill teach`"):
        _groups(TrainConfig(**base, teacher_store=str(tmp_path / "missing.sqlite")), data, show_progress=False)
