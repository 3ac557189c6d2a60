"""Prompt templates of the LLM teacher: configuration, not code; checked for their placeholders."""

from __future__ import annotations

import string
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from retrodistill.errors import ConfigError

Mode = Literal["ql", "yesno", "prp", "listwise"]

REQUIRED: dict[str, frozenset[str]] = {
    "ql": frozenset({"passage"}),
    "yesno": frozenset({"query", "passage"}),
    "prp": frozenset({"query", "passage_a", "passage_b"}),
    "listwise": frozenset({"query", "passages"}),
}

DEFAULT_TEMPLATES: dict[str, str] = {
    "ql": "Passage: {passage}\nWrite a search query that this passage answers.",
    "yesno": "Query: {query}\nPassage: {passage}\nIs the passage relevant to the query? Answer yes or no.",
    "prp": 'Given a query "{query}", which of the following two passages is more relevant to the query?\n\n'
    "Passage A: {passage_a}\n\nPassage B: {passage_b}\n\nOutput Passage A or Passage B:",
    "listwise": "I will provide you with passages, each indicated by a number identifier [].\n"
    "Rank the passages based on their relevance to the search query: {query}.\n\n{passages}\n\n"
    "Search query: {query}.\nRank the passages above based on their relevance to the search query. "
    "List all the passages in descending order using identifiers, the most relevant first, "
    "in the format [2] > [1] > [3]. Only respond with the ranking.",
}


class LLMTeacherConfig(BaseModel):
    """How the LLM teacher prompts and scores. ``template`` defaults to the mode's template above.

    Modes (score semantics, higher = more relevant): ``ql`` query likelihood, mean log p(query tokens |
    passage prompt) as in UPR; ``yesno`` logit(yes) - logit(no) of the next token (weak with small models);
    ``prp`` pairwise P(A) = softmax(logit A, logit B), asked in both orders; ``listwise`` RankGPT-style
    permutation generation, scores -rank.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode = "ql"
    template: str | None = None
    system: str | None = Field(None, description="system message when chat=True")
    chat: bool | None = Field(None, description="wrap the prompt in the chat template (default: all modes but ql)")
    max_passage_tokens: int = Field(160, ge=8, description="passages are cut to this many tokens")
    listwise_passage_tokens: int = Field(48, ge=8, description="per-passage cut in listwise prompts")
    max_new_tokens: int = Field(96, ge=8, description="generation budget of a listwise answer")

    def use_chat(self) -> bool:
        return self.mode != "ql" if self.chat is None else self.chat

    def resolved_template(self) -> str:
        template = self.template if self.template is not None else DEFAULT_TEMPLATES[self.mode]
        check_template(template, self.mode)
        return template


def placeholders(template: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ConfigError(f"malformed prompt template ({exc}); write placeholders as {{query}}") from None


def check_template(template: str, mode: str) -> None:
    """A ConfigError naming missing or unknown placeholders."""
    found, need = placeholders(template), REQUIRED[mode]
    missing, unknown = need - found, found - need - ({"query"} if mode == "ql" else set())
    if missing:
        names = ", ".join("{" + m + "}" for m in sorted(missing))
        raise ConfigError(f"the {mode} prompt template lacks {names}; a {mode} template needs " + _needs(mode))
    if unknown:
        names = ", ".join("{" + m + "}" for m in sorted(unknown))
        raise ConfigError(f"the {mode} prompt template has unknown placeholders {names}; it takes " + _needs(mode))
    if mode == "ql" and "query" in found:
        raise ConfigError("a ql template must not contain {query}: the query is what the model is scored on")


def _needs(mode: str) -> str:
    return ", ".join("{" + m + "}" for m in sorted(REQUIRED[mode]))
