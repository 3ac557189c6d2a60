"""The manifest of an index directory and the checks that make the directory verify itself.

``manifest.json`` records, for every file it names, the path (relative, inside the folder), the size
and the sha256 (computed while the file is written), and a ``checksum``: the sha256 of the canonical
JSON of the rest of the manifest (sorted keys, no spaces, UTF-8), so a hand-edited manifest is caught.

Opening checks, in order: the JSON parses, the format is this one, every field has its type, the
checksum matches, every path resolves to a regular file inside the folder, every size matches, and
(``verify="full"``, the default) every sha256 matches. Any failure is one ``IndexIntegrityError``
line that names the file and says to rebuild. ``verify="fast"`` skips the hashes (sizes, manifest
and structure only); ``retrodistill index verify DIR`` always does the full check.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from retrodistill import __version__
from retrodistill.atomic import write_text
from retrodistill.errors import ConfigError, DataError
from retrodistill.index import MULTI_VECTOR_TYPES

FORMAT = 2
MANIFEST = "manifest.json"
VERIFY_MODES = ("full", "fast")
HASH_CHUNK = 4 << 20
REBUILD = "rebuild the index (retrodistill index build ... --force; cached embeddings are reused)"


class IndexIntegrityError(DataError):
    """An index directory whose files do not match its manifest, or cannot be read."""

    def __init__(self, folder: str | os.PathLike[str], message: str) -> None:
        super().__init__(message, str(folder))


class HashingWriter:
    """A binary file wrapper that counts and hashes the bytes written through it."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self.bytes = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.bytes += len(data)
        self.handle.write(data)
        return len(data)

    def entry(self, path: str) -> dict[str, Any]:
        return {"path": path, "bytes": self.bytes, "sha256": self.digest.hexdigest()}


def hash_file(path: str | os.PathLike[str]) -> tuple[int, str]:
    """(size, sha256 hex) of a file, read in 4 MiB chunks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def file_entry(folder: Path, name: str) -> dict[str, Any]:
    size, sha = hash_file(folder / name)
    return {"path": name, "bytes": size, "sha256": sha}


def checksum(manifest: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``manifest`` without its ``checksum`` field."""
    rest = {key: value for key, value in manifest.items() if key != "checksum"}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_manifest(folder: str | os.PathLike[str], manifest: dict[str, Any]) -> dict[str, Any]:
    """Write ``manifest`` (sealed with its checksum) to ``folder/manifest.json`` atomically; returns it."""
    sealed = json.loads(json.dumps({k: v for k, v in manifest.items() if k != "checksum"}, default=str))
    sealed["checksum"] = checksum(sealed)
    write_text(Path(folder) / MANIFEST, json.dumps(sealed, indent=2) + "\n")
    return sealed


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class FileEntry(_Strict):
    path: str = Field(min_length=1)
    bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Files(_Strict):
    index: FileEntry
    ids: FileEntry
    docs: FileEntry


class ModelInfo(_Strict):
    kind: Literal["bi-encoder", "colbert"] = "bi-encoder"
    id: str
    revision: str
    fingerprint: str
    dim: int = Field(gt=0)
    normalize: bool
    max_seq_length: int | None = Field(default=None, gt=0)
    query_prefix: str = ""
    passage_prefix: str = ""
    backend: str = "torch"


class IndexInfo(_Strict):
    type: str
    params: dict[str, Any]
    file: str
    bytes: int = Field(ge=0)
    bytes_per_vector: float
    ntotal: int = Field(ge=1)
    tokens: int | None = Field(default=None, ge=1)
    built_on_gpu: bool
    calibration: dict[str, Any] | None = None


class CorpusInfo(_Strict):
    """``size`` documents are live; ``deleted`` more rows stay in the index as tombstones (``index delete``);
    ``updates`` lists each ``index add`` / ``index delete`` since the build (op, documents, time, version)."""

    id: str
    size: int = Field(ge=1)
    key: str
    deleted: int = Field(default=0, ge=0)
    updates: list[dict[str, Any]] = Field(default_factory=list)


class Manifest(_Strict):
    """The schema of manifest.json (format 2); ``dim`` / ``normalized`` repeat the model's for readers."""

    format: Literal[2]
    retrodistill_version: str
    created: str
    build_seconds: dict[str, float]
    model: ModelInfo
    dim: int = Field(gt=0)
    normalized: bool
    metric: Literal["inner_product", "maxsim"]
    index: IndexInfo
    corpus: CorpusInfo
    files: Files
    checksum: str = Field(pattern=r"^[0-9a-f]{64}$")


def _disagreement(manifest: Manifest) -> str | None:
    """The first pair of fields that repeat one fact but disagree (None when all agree)."""
    if manifest.dim != manifest.model.dim or manifest.normalized != manifest.model.normalize:
        return "dim / normalized disagree with model.dim / model.normalize"
    colbert = manifest.model.kind == "colbert"
    if colbert != (manifest.index.type in MULTI_VECTOR_TYPES) or colbert != (manifest.metric == "maxsim"):
        return "model.kind, index.type and metric disagree (a colbert model, a multi-vector index and maxsim agree)"
    if manifest.index.file != manifest.files.index.path or manifest.index.bytes != manifest.files.index.bytes:
        return "index.file / index.bytes disagree with files.index"
    if manifest.index.ntotal != manifest.corpus.size + manifest.corpus.deleted:
        return "index.ntotal disagrees with corpus.size + corpus.deleted"
    paths = {manifest.files.index.path, manifest.files.ids.path, manifest.files.docs.path, MANIFEST}
    if len(paths) != 4:
        return "files must name three different files, none of them manifest.json"
    return None


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of the index directory ``path``, checked for format, field types and its checksum."""
    folder = Path(path)
    file = folder / MANIFEST
    if not file.is_file():
        hint = "build one with: retrodistill index build"
        raise DataError(f"not an index directory (no {MANIFEST}); {hint}", str(folder))
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise IndexIntegrityError(folder, f"{MANIFEST} cannot be read ({detail}); {REBUILD}") from None
    if not isinstance(raw, dict):
        raise IndexIntegrityError(folder, f"{MANIFEST} is not a JSON object; {REBUILD}")
    fmt = raw.get("format")
    if isinstance(fmt, int) and not isinstance(fmt, bool) and fmt < FORMAT:
        raise IndexIntegrityError(
            folder,
            f"{MANIFEST} is format {fmt}, written by an older retrodistill without file checksums, so the "
            f"directory cannot be verified; {REBUILD}",
        )
    if fmt != FORMAT:
        raise IndexIntegrityError(
            folder, f"{MANIFEST} has unsupported format {fmt!r} (retrodistill {__version__} reads {FORMAT}); {REBUILD}"
        )
    try:
        typed = Manifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "manifest"
        shown = first["type"] != "missing" and not isinstance(first["input"], dict | list)
        got = f", got {first['input']!r:.60}" if shown else ""
        raise IndexIntegrityError(folder, f"{MANIFEST}: {where}: {first['msg']}{got}; {REBUILD}") from None
    if checksum(raw) != raw["checksum"]:
        raise IndexIntegrityError(
            folder, f"{MANIFEST} does not match its checksum (edited after the build?); {REBUILD}"
        )
    problem = _disagreement(typed)
    if problem:
        raise IndexIntegrityError(folder, f"{MANIFEST}: {problem}; {REBUILD}")
    return raw


@dataclass(frozen=True, slots=True)
class FileCheck:
    """One verified file: its role (index, ids, docs), path, size, and hashing time (0 when not hashed)."""

    role: str
    path: Path
    bytes: int
    hashed: bool
    seconds: float


def resolve(folder: Path, role: str, rel: str) -> Path:
    """``folder/rel``, refused unless it is a regular file inside ``folder`` (no absolute path, ``..``
    or symlink out)."""
    pure = PurePath(rel)
    if pure.is_absolute() or ".." in pure.parts or "\\" in rel:
        raise IndexIntegrityError(
            folder, f"{MANIFEST}: files.{role}.path {rel!r} must be a relative path inside the index folder; {REBUILD}"
        )
    root = folder.resolve()
    target = (folder / rel).resolve()
    if not target.is_relative_to(root) or target == root:
        raise IndexIntegrityError(folder, f"{rel} leads outside the index folder (to {target}); {REBUILD}")
    if not target.is_file():
        raise IndexIntegrityError(folder, f"{rel} does not match its manifest (the file is missing); {REBUILD}")
    return target


def verify_files(folder: Path, manifest: dict[str, Any], verify: str = "full") -> dict[str, FileCheck]:
    """Check every file the manifest names (paths, sizes; sha256 too when ``verify="full"``)."""
    if verify not in VERIFY_MODES:
        raise ConfigError(f"unknown verify mode {verify!r}; choose one of: {', '.join(VERIFY_MODES)}")
    checks: dict[str, FileCheck] = {}
    entries = manifest["files"]
    paths = {role: resolve(folder, role, entry["path"]) for role, entry in entries.items()}
    for role, entry in entries.items():
        path, rel = paths[role], entry["path"]
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise IndexIntegrityError(
                folder, f"{rel} does not match its manifest ({size} bytes, expected {entry['bytes']}); {REBUILD}"
            )
        seconds = 0.0
        if verify == "full":
            start = time.perf_counter()
            try:
                _, sha = hash_file(path)
            except OSError as exc:
                raise IndexIntegrityError(folder, f"{rel} cannot be read ({exc.strerror}); {REBUILD}") from None
            seconds = time.perf_counter() - start
            if sha != entry["sha256"]:
                raise IndexIntegrityError(
                    folder,
                    f"{rel} does not match its manifest (sha256 {sha[:12]}..., expected {entry['sha256'][:12]}...); "
                    f"{REBUILD}",
                )
        checks[role] = FileCheck(role, path, size, verify == "full", seconds)
    return checks
