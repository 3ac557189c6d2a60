"""Lucene BM25 through pyserini (Anserini), the reference BM25 of the BEIR "flat" regressions."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from retrodistill.data.records import Document
from retrodistill.errors import MissingDependencyError, RetrodistillError
from retrodistill.retrieval.base import Retriever

# pyserini 0.22.1 declares dependencies that do not build on Python 3.11 (nmslib) and are not
# needed for Lucene BM25, so it is installed without them and the few it imports come from the extra.
PIP_FIX = "pip install 'retrodistill[pyserini]' && pip install --no-deps pyserini==0.22.1"
_JAVA_FIX = (
    "pyserini needs a Java 11+ runtime: install Java 17 (apt-get install openjdk-17-jdk-headless) and set JAVA_HOME"
)
# Without this, log4j2 cannot find Anserini's logger context from a JNI thread and ignores -quiet.
_QUIET_LOGS = "-Dlog4j2.contextSelector=org.apache.logging.log4j.core.selector.BasicContextSelector"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def _ensure_java_home() -> None:
    """Set ``JAVA_HOME`` from the ``java`` on PATH when it is unset (pyjnius otherwise wants javac)."""
    home = os.environ.get("JAVA_HOME")
    if home:
        if not (Path(home) / "bin" / "java").exists():
            raise RetrodistillError(f"JAVA_HOME={home} has no bin/java; {_JAVA_FIX}")
        return
    java = shutil.which("java")
    if java is None:
        raise RetrodistillError(f"no 'java' on PATH; {_JAVA_FIX}")
    os.environ["JAVA_HOME"] = str(Path(java).resolve().parent.parent)


def _pyserini() -> tuple[Any, Any]:
    """Import pyserini lazily, start the JVM quietly; return (IndexCollection, LuceneSearcher)."""
    try:
        import jnius_config
        import pyserini  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("pyserini", purpose="Lucene BM25", fix=PIP_FIX) from exc
    _ensure_java_home()
    if not jnius_config.vm_running and _QUIET_LOGS not in jnius_config.get_options():
        jnius_config.add_options(_QUIET_LOGS)
    try:
        from pyserini.pyclass import autoclass
        from pyserini.search.lucene import LuceneSearcher
    except ModuleNotFoundError as exc:  # a module pyserini imports eagerly (pandas, onnxruntime, ...)
        package = exc.name.split(".")[0] if exc.name else "pyserini"
        raise MissingDependencyError(package, purpose="Lucene BM25", fix=PIP_FIX) from exc
    except ImportError as exc:
        raise RetrodistillError(f"pyserini 0.22.1 failed to import: {_one_line(exc)}") from exc
    except Exception as exc:  # pyjnius raises bare Exception/RuntimeError when no JVM loads
        raise RetrodistillError(f"could not start the JVM ({_one_line(exc)}); {_JAVA_FIX}") from exc
    return autoclass("io.anserini.index.IndexCollection"), LuceneSearcher


class PyseriniBM25(Retriever):
    """BM25 over a Lucene index built on the fly (Porter stemming, English stopwords).

    Each document is indexed as one ``contents`` field holding ``title + " " + text`` (the BEIR
    "flat" setting), so with the defaults ``k1=0.9, b=0.4`` it reproduces pyserini's BEIR flat
    numbers. Ties are broken by doc id inside Anserini, so runs are deterministic.
    """

    name = "pyserini"

    def __init__(self, k1: float = 0.9, b: float = 0.4, threads: int = 2, index_dir: str | None = None) -> None:
        super().__init__()
        if threads < 1:
            raise ValueError("threads must be >= 1")
        self.k1 = float(k1)
        self.b = float(b)
        self.threads = int(threads)
        self.index_dir = index_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._searcher: Any = None

    def _index(self, docs: list[Document]) -> None:
        index_collection, searcher_cls = _pyserini()
        self.close()
        if self.index_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="retrodistill-lucene-")
            index_dir = self._tmp.name
        else:
            index_dir = self.index_dir
            Path(index_dir).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="retrodistill-jsoncoll-") as coll:
            shards = min(self.threads, len(docs))  # one file per indexing thread
            size = -(-len(docs) // shards)
            for i in range(shards):
                with open(Path(coll) / f"docs{i:02d}.jsonl", "w", encoding="utf-8") as out:
                    for doc in docs[i * size : (i + 1) * size]:
                        out.write(json.dumps({"id": doc.doc_id, "contents": doc.full_text()}) + "\n")
            # The BEIR flat regression's IndexCollection flags; -quiet keeps log4j at WARN.
            args = ["-collection", "JsonCollection", "-generator", "DefaultLuceneDocumentGenerator"]
            args += ["-input", coll, "-index", index_dir, "-threads", str(shards)]
            index_collection.main([*args, "-storePositions", "-storeDocvectors", "-storeRaw", "-quiet"])
        self._searcher = searcher_cls(index_dir)  # Anserini skips documents with empty text
        if self._searcher.num_docs == 0:
            raise RetrodistillError(f"pyserini indexed none of the {len(docs)} documents in {index_dir}")
        self._searcher.set_bm25(self.k1, self.b)

    def _search(self, texts: list[str], k: int) -> list[list[tuple[str, float]]]:
        if k < 1:
            return [[] for _ in texts]
        qids = [str(i) for i in range(len(texts))]
        results = self._searcher.batch_search(texts, qids, k=int(k), threads=self.threads)
        return [[(hit.docid, float(hit.score)) for hit in results.get(qid, [])] for qid in qids]

    def close(self) -> None:
        """Release the Lucene searcher and delete the temporary index, if any."""
        if self._searcher is not None:
            self._searcher.close()
            self._searcher = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        self._indexed = False
