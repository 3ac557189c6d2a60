"""An LLM teacher on a transformers causal LM (GGUF files too): query likelihood, yes/no, PRP, listwise.

Prompts come from ``LLMTeacherConfig`` templates. Scoring modes batch many prompts into one forward
(left padding, explicit position ids); listwise generates greedily one window at a time and parses the
answer with ``parse_permutation``, counting every repair in ``self.repairs``.
``dtype`` (``retrodistill.precision``): the forwards run under bfloat16 autocast where ``auto`` finds it
native and measured faster (or when asked); the weights stay float32. On a 2-core AMX Xeon a batch of 8
prompts of 132 tokens through SmolLM2-135M took 0.46 s against 1.23 s in float32, with logits within ~0.8
(``eval/bench_ql.py`` has the scores' agreement); bfloat16 scores are stored under ``dtype=bfloat16``.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from functools import cached_property
from typing import Any

from retrodistill.errors import ConfigError, require
from retrodistill.precision import check_precision, resolve_precision
from retrodistill.revision import model_revision
from retrodistill.teachers.base import Teacher
from retrodistill.teachers.prompts import LLMTeacherConfig
from retrodistill.teachers.records import TeacherSpec

log = logging.getLogger(__name__)

SEMANTICS = {"ql": "mean-log-prob", "yesno": "logit-diff", "prp": "prob-a", "listwise": "neg-rank"}
GRANULARITY = {"ql": "pointwise", "yesno": "pointwise", "prp": "pairwise", "listwise": "listwise"}


def parse_permutation(text: str, n: int) -> tuple[list[int], Counter[str]]:
    """0-based permutation of ``n`` items from an answer like ``[2] > [1] > [3]``, and the repairs made.

    Ids outside 1..n are dropped (``invalid``), repeats keep their first mention (``duplicate``), ids never
    mentioned follow in input order (``missing``); an answer with no usable id is ``unparsable``.
    """
    repairs: Counter[str] = Counter()
    order: list[int] = []
    for token in re.findall(r"\d+", text):
        index = int(token) - 1
        if not 0 <= index < n:
            repairs["invalid"] += 1
        elif index in order:
            repairs["duplicate"] += 1
        else:
            order.append(index)
    if not order:
        repairs["unparsable"] += 1
    missing = [i for i in range(n) if i not in order]
    if missing:
        repairs["missing"] += len(missing)
    return order + missing, repairs


def load_causal_lm(model_id: str, gguf_file: str | None = None, purpose: str = "LLM teachers"):
    """(model, tokenizer) of a causal LM in fp32 eval mode, tokenizer padding on the left (GGUF de-quantised).

    A model id or file that cannot be loaded is a ConfigError naming it.
    """
    if gguf_file:
        require("gguf", purpose="loading GGUF models")
    torch = require("torch", purpose=purpose, extra="llm")
    require("transformers", purpose=purpose, extra="llm")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if gguf_file:
        from retrodistill.inference import gguf

        folder = gguf.cached_folder(model_id, gguf_file)
        if gguf.verified(folder):
            tokenizer = AutoTokenizer.from_pretrained(folder)
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
            return _ready(model, tokenizer)
        if folder.exists():
            log.warning("%s does not match its manifest; de-quantising %s again", folder, gguf_file)
    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_id, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(model_id, dtype=torch.float32, **kwargs)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        what = f"{model_id} (file {gguf_file})" if gguf_file else model_id
        raise ConfigError(
            f"cannot load the causal LM {what}: {first[:200]}; give a Hugging Face model id present in the "
            "local cache (HF_HUB_CACHE) or a model folder"
        ) from None
    if gguf_file:
        try:
            gguf.dequantised(model, tokenizer, model_id, gguf_file)
        except OSError as exc:  # a read-only or full cache costs the next load time, not this one
            log.warning("could not keep the de-quantised %s in the cache: %s", gguf_file, exc)
    return _ready(model, tokenizer)


def _ready(model: Any, tokenizer: Any) -> tuple[Any, Any]:
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer


class LLMTeacher(Teacher):
    """A causal LM as relevance teacher; ``mode`` picks the granularity (see ``LLMTeacherConfig``)."""

    extra_options = LLMTeacherConfig  # what ``**options`` take (system, chat, ...), checked by specs.bind

    def __init__(
        self,
        model: str,
        gguf_file: str | None = None,
        mode: str = "ql",
        template: str | None = None,
        batch_size: int = 8,
        window: int | None = 3,
        list_window: int = 20,
        stride: int = 10,
        config: LLMTeacherConfig | None = None,
        chunk_size: int = 64,
        dtype: str = "auto",
        **options: object,
    ) -> None:
        super().__init__(window=window, list_window=list_window, stride=stride)
        self.chunk_size = int(chunk_size)
        self.requested_dtype = check_precision(dtype, "llm dtype")
        base = config.model_dump() if config else {}
        base.update({"mode": mode} if config is None or mode != "ql" else {})
        if template is not None:
            base["template"] = template
        unknown = set(options) - set(LLMTeacherConfig.model_fields)
        if unknown:
            raise ConfigError(
                f"unknown llm option {sorted(unknown)[0]!r}; it takes {', '.join(LLMTeacherConfig.model_fields)}"
            )
        base.update(options)
        self.config = LLMTeacherConfig(**base)
        self.template = self.config.resolved_template()
        self.granularity = GRANULARITY[self.config.mode]
        self.model_id, self.gguf_file = model, gguf_file
        self.batch_size = int(batch_size)

    @cached_property
    def dtype(self) -> str:
        """The resolved dtype of the forwards, ``float32`` or ``bfloat16`` (the model runs on the CPU)."""
        return resolve_precision(self.requested_dtype, "cpu")

    @cached_property
    def spec(self) -> TeacherSpec:
        cfg = self.config
        options: dict[str, object] = {"gguf_file": self.gguf_file, "system": cfg.system, "chat": cfg.use_chat()}
        if self.dtype != "float32":  # float32 specs leave it out, so stores written before dtype existed match
            options["dtype"] = self.dtype
        options["max_passage_tokens"] = (
            cfg.listwise_passage_tokens if cfg.mode == "listwise" else cfg.max_passage_tokens
        )
        if cfg.mode == "listwise":
            options.update(list_window=self.list_window, stride=self.stride, max_new_tokens=cfg.max_new_tokens)
        return TeacherSpec(
            "llm",
            self.model_id,
            model_revision(self.model_id),
            self.granularity,
            SEMANTICS[cfg.mode],
            self.template,
            options,
        )

    @cached_property
    def _lm(self):
        return load_causal_lm(self.model_id, self.gguf_file, purpose="LLM teachers")

    def load(self) -> None:
        self._lm  # noqa: B018

    def _cut(self, passage: str, tokens: int) -> str:
        tokenizer = self._lm[1]
        ids = tokenizer(passage, add_special_tokens=False)["input_ids"]
        return passage if len(ids) <= tokens else tokenizer.decode(ids[:tokens])

    def _prompt(self, **fields: str) -> str:
        text = self.template.format(**fields)
        if not self.config.use_chat():
            return text
        messages = ([{"role": "system", "content": self.config.system}] if self.config.system else []) + [
            {"role": "user", "content": text}
        ]
        return self._lm[1].apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _forward(self, sequences: list[list[int]], keep: int = 1):
        """Logits of the last ``keep`` positions of left-padded sequences, one forward per ``batch_size``.

        Yields (indexes into ``sequences``, logits of shape (batch, keep, vocab), padded width).
        """
        torch = require("torch", purpose="LLM teachers", extra="llm")

        model, tokenizer = self._lm
        order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
        for lo in range(0, len(order), self.batch_size):
            idx = order[lo : lo + self.batch_size]
            width = max(len(sequences[i]) for i in idx)
            ids = torch.full((len(idx), width), tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                ids[row, width - len(sequences[i]) :] = torch.tensor(sequences[i])
                mask[row, width - len(sequences[i]) :] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            with torch.inference_mode(), self._autocast(torch):
                logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep).logits
            yield idx, logits.float(), keep

    def _autocast(self, torch: Any) -> Any:
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.dtype == "bfloat16")

    def _encode(self, text: str) -> list[int]:
        return self._lm[1](text, add_special_tokens=False)["input_ids"]

    def _score_pairs(self, pairs: list[tuple[str, str]]) -> list[float]:
        torch = require("torch", purpose="LLM teachers", extra="llm")

        cut = self.config.max_passage_tokens
        scores = [0.0] * len(pairs)
        if self.config.mode == "ql":
            prefixes = [self._encode(self._prompt(passage=self._cut(p, cut))) for _, p in pairs]
            targets = [self._encode(q) or [self._lm[1].eos_token_id] for q, _ in pairs]
            keep = max(len(t) for t in targets) + 1
            for idx, logits, width in self._forward([a + b for a, b in zip(prefixes, targets, strict=True)], keep):
                logp = torch.log_softmax(logits, -1)
                for row, i in enumerate(idx):
                    n = len(targets[i])
                    steps = logp[row, width - n - 1 : width - 1]
                    scores[i] = float(steps.gather(1, torch.tensor(targets[i]).unsqueeze(1)).mean())
            return scores
        yes, no = self._token_ids(["yes", "Yes", " yes", " Yes"]), self._token_ids(["no", "No", " no", " No"])
        prompts = [self._encode(self._prompt(query=q, passage=self._cut(p, cut))) for q, p in pairs]
        for idx, logits, _ in self._forward(prompts):
            last = logits[:, -1]
            diff = torch.logsumexp(last[:, yes], -1) - torch.logsumexp(last[:, no], -1)
            for row, i in enumerate(idx):
                scores[i] = float(diff[row])
        return scores

    def _token_ids(self, words: list[str]) -> list[int]:
        return sorted({self._encode(w)[0] for w in words})

    def _prefer(self, triples: list[tuple[str, str, str]]) -> list[float]:
        torch = require("torch", purpose="LLM teachers", extra="llm")

        cut = self.config.max_passage_tokens
        a_ids, b_ids = self._token_ids(["A", " A"]), self._token_ids(["B", " B"])
        prompts = [
            self._encode(self._prompt(query=q, passage_a=self._cut(a, cut), passage_b=self._cut(b, cut)))
            for q, a, b in triples
        ]
        probs = [0.5] * len(triples)
        for idx, logits, _ in self._forward(prompts):
            last = logits[:, -1]
            two = torch.stack([torch.logsumexp(last[:, a_ids], -1), torch.logsumexp(last[:, b_ids], -1)], -1)
            p = torch.softmax(two, -1)[:, 0]
            for row, i in enumerate(idx):
                probs[i] = float(p[row])
        return probs

    def _rank_window(self, query: str, passages: list[str]) -> list[int]:
        torch = require("torch", purpose="LLM teachers", extra="llm")

        model, tokenizer = self._lm
        cut = self.config.listwise_passage_tokens
        listing = "\n".join(f"[{i}] {self._cut(p, cut)}" for i, p in enumerate(passages, start=1))
        ids = torch.tensor([self._encode(self._prompt(query=query, passages=listing))])
        with torch.inference_mode(), self._autocast(torch):
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=self.config.max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        answer = tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        perm, repairs = parse_permutation(answer, len(passages))
        self.repairs.update(repairs)
        self.repairs["windows"] += 1
        return perm
