"""Teachers: rerankers whose scores students learn from. Names in TEACHERS are what ``--teacher`` accepts."""

from __future__ import annotations

import inspect

from retrodistill.errors import ConfigError
from retrodistill.registry import Registry

TEACHERS = Registry("teacher")
TEACHERS.register(
    "cross-encoder", "retrodistill.teachers.cross_encoder:CrossEncoderTeacher", "sentence-transformers CrossEncoder"
)
TEACHERS.register("llm", "retrodistill.teachers.llm:LLMTeacher", "causal LM: mode=ql|yesno|prp|listwise, gguf_file=")


def build_teacher(text: str, **defaults: object) -> object:
    """A teacher from a spec such as ``cross-encoder:MODEL`` or ``llm:MODEL,gguf_file=F,mode=prp`` (no model loaded)."""
    from retrodistill.specs import parse_spec

    spec = parse_spec(text)
    cls = TEACHERS.get(spec.kind)
    if not spec.arg:
        raise ConfigError(f"teacher {spec.kind} needs a model: write {spec.kind}:MODEL_ID_OR_PATH")
    params = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    options = {**defaults, **spec.options}
    unknown = [k for k in options if k not in params and not takes_any]
    if unknown:
        allowed = [p for p in params if p not in ("self", "model", "options")]
        raise ConfigError(f"unknown option {unknown[0]!r} for teacher {spec.kind}; it takes: {', '.join(allowed)}")
    return cls(spec.arg, **options)
