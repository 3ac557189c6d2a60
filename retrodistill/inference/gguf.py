"""A GGUF checkpoint de-quantised once and kept as a plain Hugging Face folder.

transformers reads a GGUF file by parsing it three times (tokenizer, config, weights) and de-quantising
every tensor in numpy: about 25 s for SmolLM2-135M on an idle core, paid by every process that loads it
(each generation run, each LLM teacher, each Ray actor). The first load writes the result - float32
safetensors, config and tokenizer - into ``$RETRODISTILL_CACHE/gguf/<key>/``; later loads read that folder
in about a second and get the same weights bit for bit. The key covers the GGUF's revision (``id@commit``),
the file name and the transformers version that de-quantised it. The folder is written under a temporary
name and renamed into place; a ``manifest.json`` holds each file's size and SHA-256, checked on every use;
a folder that fails the check is rebuilt from the GGUF.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from retrodistill.atomic import sha256_file
from retrodistill.cache import default_cache_dir
from retrodistill.revision import model_revision

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "manifest.json"


def description(model_id: str, gguf_file: str) -> dict[str, Any]:
    """What the de-quantised folder depends on."""
    import transformers

    return {
        "format": FORMAT,
        "revision": model_revision(model_id),
        "gguf_file": gguf_file,
        "transformers": transformers.__version__,
    }


def cached_folder(model_id: str, gguf_file: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the de-quantised copy of ``model_id``'s ``gguf_file`` lives (it may not exist yet)."""
    key = hashlib.sha256(json.dumps(description(model_id, gguf_file), sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir or default_cache_dir()) / "gguf" / key


def verified(folder: Path) -> bool:
    """True when ``folder`` has its manifest and every file it lists, with the recorded size and SHA-256."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    for name, record in files.items():
        path = folder / name
        if not path.is_file() or path.stat().st_size != record["bytes"] or sha256_file(path) != record["sha256"]:
            return False
    return bool(files)


def dequantised(model: Any, tokenizer: Any, model_id: str, gguf_file: str, cache_dir: str | None = None) -> Path:
    """Write the loaded ``model`` and ``tokenizer`` (read from ``gguf_file``) as the cached folder, atomically:
    built in a temporary folder beside it, sealed with its manifest, then renamed into place. A damaged
    folder is replaced; one another process finished first is kept."""
    folder = cached_folder(model_id, gguf_file, cache_dir)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        _save_model(model, tmp)
        tokenizer.save_pretrained(tmp)
        files = {p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in sorted(tmp.iterdir())}
        record = {**description(model_id, gguf_file), "files": files}
        (tmp / MANIFEST).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        if folder.exists() and verified(folder):
            return folder
        if folder.exists():
            log.warning("%s failed its checksums; replacing it", folder)
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process renamed its copy into place between the check and here
            if not verified(folder):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("de-quantised %s (%s) once into %s", model_id, gguf_file, folder)
    return folder


def _save_model(model: Any, folder: Path) -> None:
    """The weights, config and generation config as a plain float folder (``save_pretrained`` refuses a
    model transformers marks as GGUF-quantised, though its weights are de-quantised floats by now)."""
    from safetensors.torch import save_model

    config = model.config.to_dict()
    config.pop("quantization_config", None)
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if model.generation_config is not None:
        model.generation_config.save_pretrained(folder)
    save_model(model, str(folder / "model.safetensors"), metadata={"format": "pt"})
