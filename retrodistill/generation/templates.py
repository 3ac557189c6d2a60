"""Prompt templates for writing pseudo-queries: configuration data, each with one ``{passage}`` placeholder.

``doc2query`` asks an instruction-tuned model for one search query (chat format); ``inpars`` is the
InPars few-shot prompt (three MS MARCO document/query examples, then the passage, plain text);
``gpl`` asks for a question the passage answers, as GPL's doc2query step does; ``finding`` asks for a
short statement of what the passage reports (claim-style queries, as in fact-checking and argument
retrieval). A file given instead of a name is read as one chat template. Several names joined by
``+`` (e.g. ``gpl+finding``) are a mix: each (passage, sample) draws one of them by seed, so a corpus
gets queries of several styles at the cost of one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from retrodistill.errors import ConfigError
from retrodistill.teachers.prompts import placeholders


class QueryTemplate(BaseModel):
    """A named prompt; ``chat`` wraps it in the model's chat template as a user message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    text: str
    chat: bool = True

    def digest(self) -> str:
        """Short hash of the prompt and its wrapping: what a store records besides the name."""
        return hashlib.sha256(f"{self.chat}\n{self.text}".encode()).hexdigest()[:12]


_INPARS = (
    "Example 1:\n"
    "Document: We don't know a lot about the effects of caffeine during pregnancy on you and your baby. "
    "So it's best to limit the amount you get each day. If you are pregnant, limit caffeine to 200 "
    "milligrams each day.\n"
    "Relevant Query: Is a little caffeine ok during pregnancy?\n\n"
    "Example 2:\n"
    "Document: Passiflora herbertiana. A rare passion fruit native to Australia. Fruits are green-skinned, "
    "white fleshed, with an unknown edible rating.\n"
    "Relevant Query: What fruit is native to Australia?\n\n"
    "Example 3:\n"
    "Document: The Canadian Armed Forces. 1 The first large-scale Canadian peacekeeping mission started "
    "in Egypt on November 24, 1956. 2 There are approximately 65,000 Regular Force and 25,000 reservist "
    "members in the Canadian military.\n"
    "Relevant Query: How large is the Canadian military?\n\n"
    "Example 4:\n"
    "Document: {passage}\n"
    "Relevant Query:"
)

TEMPLATES: dict[str, QueryTemplate] = {
    "doc2query": QueryTemplate(
        name="doc2query",
        text="Write one short search query that the following passage answers. "
        "Reply with the query only.\n\nPassage: {passage}",
    ),
    "inpars": QueryTemplate(name="inpars", text=_INPARS, chat=False),
    "gpl": QueryTemplate(
        name="gpl",
        text="Passage: {passage}\n\nWrite a question that this passage answers. Reply with the question only.",
    ),
    "finding": QueryTemplate(
        name="finding",
        text="Passage: {passage}\n\nWrite a short statement of the main finding of this passage. "
        "Reply with the statement only.",
    ),
}


def check_query_template(template: QueryTemplate) -> QueryTemplate:
    """The template itself, or a ConfigError when it lacks ``{passage}`` or has other placeholders."""
    found = placeholders(template.text)
    if "passage" not in found:
        raise ConfigError(f"the query template {template.name!r} lacks {{passage}}; write it where the passage goes")
    unknown = sorted(found - {"passage"})
    if unknown:
        raise ConfigError(
            f"the query template {template.name!r} has unknown placeholders "
            + ", ".join("{" + u + "}" for u in unknown)
            + "; it takes only {passage}"
        )
    return template


def resolve_templates(spec: str) -> tuple[QueryTemplate, ...]:
    """The templates of a ``+``-joined mix (one name or file: a tuple of one), each checked."""
    single = "+" not in spec or Path(spec).expanduser().is_file()
    parts = [spec] if single else [part.strip() for part in spec.split("+")]
    if any(not part for part in parts):
        raise ConfigError(f"query template mix {spec!r} has an empty part; join names with '+', e.g. gpl+finding")
    return tuple(resolve_template(part) for part in parts)


def mix_digest(templates: tuple[QueryTemplate, ...]) -> str:
    """One short hash for a mix (the template's own digest for a single one)."""
    if len(templates) == 1:
        return templates[0].digest()
    return hashlib.sha256("\n".join(t.digest() for t in templates).encode()).hexdigest()[:12]


def resolve_template(name_or_file: str) -> QueryTemplate:
    """A built-in template by name, or a text file read as a chat template named after the file."""
    if name_or_file in TEMPLATES:
        return check_query_template(TEMPLATES[name_or_file])
    path = Path(name_or_file).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"unknown query template {name_or_file!r}; choose {', '.join(TEMPLATES)} or give a text file "
            "holding {passage}"
        )
    return check_query_template(QueryTemplate(name=path.stem, text=path.read_text(encoding="utf-8").strip()))
