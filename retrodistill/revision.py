"""Model identity: which weights a model id or folder resolves to, for fingerprints and manifests."""

from __future__ import annotations

import hashlib
import os


def model_revision(model_id: str) -> str:
    """``id@commit`` for a hub model found in the local cache, a content hash for a local folder."""
    if os.path.isdir(model_id):
        digest = hashlib.sha256()
        for name in sorted(os.listdir(model_id)):
            if name.endswith((".safetensors", ".bin")):
                with open(os.path.join(model_id, name), "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 22), b""):
                        digest.update(block)
        return f"{os.path.abspath(model_id)}#sha256:{digest.hexdigest()[:16]}"
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(model_id, local_files_only=True)
    except Exception:
        return model_id
    return f"{model_id}@{os.path.basename(os.path.normpath(folder))}"


def same_weights(a: str, b: str) -> bool:
    """Revisions match: equal hub ``id@commit``, or equal content hashes of local folders (paths may differ)."""
    if "#sha256:" in a and "#sha256:" in b:
        return a.split("#sha256:", 1)[1] == b.split("#sha256:", 1)[1]
    return a == b
