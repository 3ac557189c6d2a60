"""System specs as users type them: ``KIND[:ARG][,key=value,...]``.

Examples: ``bm25s``, ``bm25s,k1=1.2,b=0.75``, ``pyserini``, ``dense:sentence-transformers/all-MiniLM-L6-v2``,
``dense:models/my-student,batch_size=32,label=student``, ``run:eval/runs/x/bm25s.trec``.
The option ``label`` names the system in tables and output files.

Stages that build specs from paths (a trained model folder, a score store) pass ``SystemSpec`` records,
never re-serialised text, so a path holding a comma stays whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from retrodistill.errors import ConfigError


@dataclass(frozen=True)
class SystemSpec:
    kind: str
    arg: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or (f"{self.kind}:{self.arg}" if self.arg else self.kind)

    @property
    def slug(self) -> str:
        """A file-name-safe form of ``name``."""
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in self.name)

    @property
    def text(self) -> str:
        """The spec as a user would type it (for records and messages; a value holding a comma does not parse back)."""
        options = {**self.options, **({"label": self.label} if self.label else {})}
        head = f"{self.kind}:{self.arg}" if self.arg else self.kind
        return ",".join([head, *(f"{k}={v}" for k, v in options.items())])


def parse_spec(text: str) -> SystemSpec:
    head, *pairs = [part.strip() for part in text.split(",")]
    kind, _, arg = head.partition(":")
    if not kind:
        raise ConfigError(f"empty system spec {text!r}; expected KIND[:ARG][,key=value...], e.g. bm25s,k1=0.9")
    options: dict[str, Any] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise ConfigError(f"bad option {pair!r} in system spec {text!r}; write key=value, e.g. {kind},k1=0.9")
        options[key.strip()] = _value(value.strip())
    label = str(options.pop("label", ""))
    return SystemSpec(kind.strip(), arg.strip() or None, options, label)


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


@dataclass(frozen=True)
class BoundSpec:
    """A spec checked against the class it names: the argument and typed options, ready to construct.

    Binding loads nothing; ``build()`` constructs (which may load a model).
    """

    spec: SystemSpec
    cls: type
    kwargs: dict[str, Any]

    def build(self) -> Any:
        try:
            if self.spec.arg is not None and _takes_arg(self.cls):
                return self.cls(self.spec.arg, **self.kwargs)
            return self.cls(**self.kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{self.spec.name}: {_one_line(exc)}") from None


def _one_line(exc: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']}" if where else first["msg"]
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


ARG_NAMES = {"index": ("DIR", "an index directory"), "server": ("URL", "a server URL"), "run": ("PATH", "a file")}


def bind(cls: type, spec: SystemSpec | str, **defaults: Any) -> BoundSpec:
    """Check ``spec`` against ``cls.__init__`` without constructing it.

    The spec's argument fills the first parameter (``model``); every option must be a parameter and
    its value must fit the parameter's annotation (pydantic rules, so ``k1=abc`` for a float fails
    here, not after a model has loaded). A class taking ``**options`` names what they may hold in
    ``extra_options``, a pydantic model whose fields (and their bounds) are checked the same way.
    ``defaults`` fill parameters the spec leaves unset, where the class takes them. Errors are
    one-line ConfigErrors in one style.
    """
    import inspect
    import typing

    from pydantic import TypeAdapter, ValidationError

    if isinstance(spec, str):
        spec = parse_spec(spec)
    params = inspect.signature(cls.__init__).parameters
    try:
        hints = typing.get_type_hints(cls.__init__, include_extras=True)
    except Exception:
        hints = {}
    takes_arg = _takes_arg(cls)
    names = [p for p in params if p not in ("self", "model") and params[p].kind is not inspect.Parameter.VAR_KEYWORD]
    extra = getattr(cls, "extra_options", None)
    if extra is not None and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        for key, info in extra.model_fields.items():  # what **options take; the model's types are the narrower
            if key not in names:
                names.append(key)
            hints[key] = typing.Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    if takes_arg and not spec.arg:
        arg, thing = ARG_NAMES.get(spec.kind, ("MODEL_ID_OR_PATH", "a model"))
        raise ConfigError(f"{spec.kind} needs {thing}: write {spec.kind}:{arg}")
    if not takes_arg and spec.arg:
        raise ConfigError(f"{spec.kind} takes no ':{spec.arg}' argument; pass options as {spec.kind},key=value")
    kwargs: dict[str, Any] = {
        k: v for k, v in defaults.items() if v is not None and k in params and k not in spec.options
    }
    for key, value in spec.options.items():
        if key not in names:
            raise ConfigError(f"unknown option {key!r} for {spec.kind}; it takes: {', '.join(names) or 'no options'}")
        hint = hints.get(key)
        if hint is not None:
            adapter = TypeAdapter(hint)
            try:
                value = adapter.validate_python(value)
            except ValidationError as exc:
                try:  # "1" was parsed as a number but the option is text (a path, a name)
                    value = adapter.validate_python(str(value))
                except ValidationError:
                    reason = exc.errors()[0]["msg"].lower()
                    raise ConfigError(f"bad value {key}={value!r} for {spec.kind}: {reason}") from None
        kwargs[key] = value
    return BoundSpec(spec, cls, kwargs)


T = TypeVar("T")


def checked(check: Callable[[T], object], value: T) -> T:
    """``value`` after ``check(value)``, for pydantic field validators: a ConfigError becomes the field's error.

    The CLI then prints ``invalid configuration: FIELD: <the check's message>`` as its one line.
    """
    from pydantic_core import PydanticCustomError

    try:
        check(value)
    except ConfigError as exc:
        raise PydanticCustomError("bad_spec", "{reason}", {"reason": str(exc)}) from None
    return value


def _takes_arg(cls: type) -> bool:
    import inspect

    return "model" in inspect.signature(cls.__init__).parameters
