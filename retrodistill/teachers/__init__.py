"""Teachers: rerankers whose scores students learn from. Names in TEACHERS are what ``--teacher`` accepts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from retrodistill.registry import Registry

if TYPE_CHECKING:
    from retrodistill.specs import BoundSpec, SystemSpec
    from retrodistill.teachers.base import Teacher

TEACHERS = Registry("teacher")
TEACHERS.register(
    "cross-encoder", "retrodistill.teachers.cross_encoder:CrossEncoderTeacher", "sentence-transformers CrossEncoder"
)
TEACHERS.register(
    "bi-encoder", "retrodistill.teachers.bi_encoder:BiEncoderTeacher", "sentence-transformers bi-encoder: cosine"
)
TEACHERS.register("bm25", "retrodistill.teachers.bm25:BM25Teacher", "BM25 (bm25s) over the scored corpus")
TEACHERS.register("llm", "retrodistill.teachers.llm:LLMTeacher", "causal LM: mode=ql|yesno|prp|listwise, gguf_file=")


def bind_teacher(spec: str | SystemSpec, **defaults: Any) -> BoundSpec:
    """A teacher spec (``cross-encoder:MODEL``, ``llm:MODEL,gguf_file=F,mode=prp``) checked, nothing loaded."""
    from retrodistill.specs import bind, parse_spec

    spec = parse_spec(spec) if isinstance(spec, str) else spec
    return bind(TEACHERS.get(spec.kind), spec, **defaults)


def build_teacher(spec: str | SystemSpec, **defaults: Any) -> Teacher:
    """The teacher a spec names, constructed (teachers load their model lazily, on first score)."""
    return bind_teacher(spec, **defaults).build()
