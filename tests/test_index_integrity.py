"""Index directories verify themselves: every damage is one CLI line (exit 2) naming the file, never a
traceback or a silent wrong run; bad build options are refused before anything is written.

Everything goes through the real CLI in a subprocess, on one small index built once from the SciFact
slice with the real MiniLM model. The manifest's hashes and checksum are recomputed here with hashlib.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
EXE = [sys.executable, "-m", "retrodistill.cli.main"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EXE, "-q", *args], capture_output=True, text=True, env=os.environ, timeout=900)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a refused command (exit 2, no traceback)."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("retrodistill: error: "), result.stderr[-2000:]
    return lines[0]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """The same embedding cache as test_index_build (one encoding of the slice per session)."""
    return tmp_path_factory.getbasetemp() / "index-embeddings"


@pytest.fixture(scope="module")
def index_dir(scifact_slice, cache, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("integrity") / "flat"
    result = cli("index", "build", "--model", MODEL, "--corpus", str(scifact_slice), "--out", str(out),
                 "--cache-dir", str(cache))  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def damaged(index_dir: Path, tmp_path: Path, damage: Callable[[Path], None]) -> Path:
    copy = tmp_path / "index"
    shutil.copytree(index_dir, copy)
    damage(copy)
    return copy


def edit_manifest(change: Callable[[dict], None]) -> Callable[[Path], None]:
    """Edit manifest.json by hand (its checksum is left as it was)."""

    def damage(folder: Path) -> None:
        manifest = json.loads((folder / "manifest.json").read_text())
        change(manifest)
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))

    return damage


def reseal_manifest(change: Callable[[dict], None]) -> Callable[[Path], None]:
    """Edit manifest.json and recompute its checksum, as a crafted manifest would."""

    def damage(folder: Path) -> None:
        manifest = json.loads((folder / "manifest.json").read_text())
        change(manifest)
        manifest["checksum"] = canonical_sha256(manifest)
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))

    return damage


def canonical_sha256(manifest: dict) -> str:
    rest = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def truncate(name: str) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 2])

    return damage


def empty(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes(b"")


def random_bytes(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes(os.urandom((folder / name).stat().st_size))


def reorder_ids(folder: Path) -> None:
    ids = json.loads((folder / "ids.json").read_text())
    ids[0], ids[1] = ids[1], ids[0]  # valid JSON, same length, same bytes count
    (folder / "ids.json").write_text(json.dumps(ids) + "\n")


def empty_docs_table(folder: Path) -> None:
    conn = sqlite3.connect(folder / "docs.sqlite")
    conn.execute("DELETE FROM docs")
    conn.commit()
    conn.close()


def flip_normalize(manifest: dict) -> None:
    manifest["model"]["normalize"] = manifest["normalized"] = False


def symlink_out(folder: Path) -> None:
    outside = folder.parent / "outside-ids.json"
    shutil.copy(folder / "ids.json", outside)
    (folder / "ids.json").unlink()
    (folder / "ids.json").symlink_to(outside)


def path_up(manifest: dict) -> None:
    manifest["files"]["ids"]["path"] = "../outside-ids.json"


DAMAGE = {
    "index-truncated": (truncate("index.faiss"), "index.faiss does not match its manifest"),
    "index-empty": (empty("index.faiss"), "index.faiss does not match its manifest"),
    "index-random": (random_bytes("index.faiss"), "index.faiss does not match its manifest (sha256"),
    "docs-truncated": (truncate("docs.sqlite"), "docs.sqlite does not match its manifest"),
    "docs-empty": (empty("docs.sqlite"), "docs.sqlite does not match its manifest"),
    "docs-random": (random_bytes("docs.sqlite"), "docs.sqlite does not match its manifest (sha256"),
    "docs-table-emptied": (empty_docs_table, "docs.sqlite does not match its manifest"),
    "ids-truncated": (truncate("ids.json"), "ids.json does not match its manifest"),
    "ids-empty": (empty("ids.json"), "ids.json does not match its manifest"),
    "ids-random": (random_bytes("ids.json"), "ids.json does not match its manifest (sha256"),
    "ids-reordered": (reorder_ids, "ids.json does not match its manifest (sha256"),
    "ids-missing": (lambda folder: (folder / "ids.json").unlink(), "ids.json does not match its manifest"),
    "ids-symlink-out": (symlink_out, "ids.json leads outside the index folder"),
    "normalize-flipped": (edit_manifest(flip_normalize), "manifest.json does not match its checksum"),
    "path-up-edited": (edit_manifest(path_up), "manifest.json does not match its checksum"),
    "path-up-resealed": (reseal_manifest(path_up), "manifest.json: files.ids.path '../outside-ids.json' must be"),
    "dim-abc": (edit_manifest(lambda m: m["model"].update(dim="abc")), "manifest.json: model.dim"),
    "old-format": (edit_manifest(lambda m: m.update(format=1)), "manifest.json is format 1"),
    "no-manifest": (lambda folder: (folder / "manifest.json").unlink(), "not an index directory (no manifest.json)"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_eval_refuses_a_damaged_index_in_one_line(index_dir, scifact_slice, tmp_path, case):
    damage, expected = DAMAGE[case]
    folder = damaged(index_dir, tmp_path, damage)
    if case == "path-up-resealed":
        shutil.copy(index_dir / "ids.json", tmp_path / "outside-ids.json")
    out = tmp_path / "eval-out"
    result = cli("eval", "--dataset", str(scifact_slice), "--system", f"index:{folder}", "--output", str(out))
    line = one_error_line(result)
    assert f"{folder}: {expected}" in line, line
    assert "rebuild the index" in line or case == "no-manifest"
    assert not out.exists(), "no run output is written for a damaged index"


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (random_bytes("index.faiss"), "index.faiss cannot be read by FAISS"),
        (random_bytes("docs.sqlite"), "docs.sqlite cannot be read by SQLite"),
        (empty_docs_table, "docs.sqlite does not match its manifest (0 documents"),
        (truncate("index.faiss"), "index.faiss does not match its manifest"),
    ],
    ids=["faiss-random", "sqlite-random", "docs-table-emptied", "faiss-truncated"],
)
def test_fast_verify_still_turns_read_errors_into_one_line(index_dir, scifact_slice, tmp_path, damage, expected):
    """verify=fast skips the hashes: FAISS and SQLite read the damaged files, and their errors are one line."""
    folder = damaged(index_dir, tmp_path, damage)
    out = tmp_path / "eval-out"
    spec = f"index:{folder},verify=fast"
    line = one_error_line(cli("eval", "--dataset", str(scifact_slice), "--system", spec, "--output", str(out)))
    assert f"{folder}: {expected}" in line and "rebuild the index" in line, line
    assert not out.exists()


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (random_bytes("index.faiss"), "index.faiss does not match its manifest"),
        (edit_manifest(flip_normalize), "manifest.json does not match its checksum"),
    ],
    ids=["faiss-random", "normalize-flipped"],
)
def test_serve_refuses_a_damaged_index_at_start_up(index_dir, tmp_path, damage, expected):
    folder = damaged(index_dir, tmp_path, damage)
    line = one_error_line(cli("serve", str(folder), "--port", "0"))
    assert f"{folder}: {expected}" in line, line


def test_manifest_records_size_sha256_and_its_own_checksum(index_dir):
    manifest = json.loads((index_dir / "manifest.json").read_text())
    assert manifest["format"] == 2
    assert manifest["checksum"] == canonical_sha256(manifest)
    assert set(manifest["files"]) == {"index", "ids", "docs"}
    for entry in manifest["files"].values():
        data = (index_dir / entry["path"]).read_bytes()
        assert entry["bytes"] == len(data) and entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["files"]["index"]["path"] == manifest["index"]["file"] == "index.faiss"
    assert sorted(p.name for p in index_dir.iterdir()) == ["docs.sqlite", "ids.json", "index.faiss", "manifest.json"]


def test_index_verify_command(index_dir, tmp_path):
    result = cli("index", "verify", str(index_dir))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    names = [line.split()[:2] for line in lines[:3]]
    assert names == [["ok", "index.faiss"], ["ok", "ids.json"], ["ok", "docs.sqlite"]]
    assert "every file matches its manifest" in lines[-1]
    folder = damaged(index_dir, tmp_path, reorder_ids)
    assert "ids.json does not match its manifest" in one_error_line(cli("index", "verify", str(folder)))


def test_untouched_index_evaluates_like_dense(index_dir, scifact_slice, cache, tmp_path):
    out = tmp_path / "eval-out"
    result = cli("eval", "--dataset", str(scifact_slice), "--system", f"dense:{MODEL}", "--system",
                 f"index:{index_dir}", "--output", str(out), "--cache-dir", str(cache), "--no-plot",
                 "--measure", "nDCG@10", "--measure", "R@100")  # fmt: skip
    assert result.returncode == 0, result.stderr
    dense, index = json.loads((out / "metrics.json").read_text())["systems"]
    assert dense["metrics"] == index["metrics"]
    assert dense["per_query"] == index["per_query"]
    assert dense["metrics"]["nDCG@10"] > 0.5


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--shard-size", "0"], "--shard-size must be a positive integer, got 0"),
        (["--shard-size", "-1"], "--shard-size must be a positive integer, got -1"),
        (["--batch-size", "0"], "--batch-size must be a positive integer, got 0"),
        (["--max-seq-length", "0"], "--max-seq-length must be a positive integer, got 0"),
        (["--index", "flat,nprobe=4"], "unknown option 'nprobe' for index type flat; it takes: no options"),
        (["--index", "hnsw,dim=3"], "unknown option 'dim' for index type hnsw; it takes: M, efConstruction, efSearch"),
        (["--index", "hnsw,M=abc"], "bad value M='abc' for hnsw"),
        (["--index", "annoy"], "unknown index type 'annoy'"),
        (["--index", "hnsw:x"], "--index takes TYPE[,key=value...]"),
        (["--index", "hnsw,M=0"], "hnsw: M, efConstruction and efSearch must be positive"),
        (["--index", "ivfpq,m=7"], "ivfpq: m (pq_bytes) must divide the dimension 384, got 7"),
        (["--index", "ivf,recall_target=1.5"], "ivf: recall_target must lie in (0, 1], got 1.5"),
    ],
    ids=[
        "shard0",
        "shard-1",
        "batch0",
        "seqlen0",
        "flat-nprobe",
        "hnsw-dim",
        "M-abc",
        "annoy",
        "arg",
        "M0",
        "m7",
        "recall1.5",
    ],
)
def test_bad_build_options_are_one_line_and_write_nothing(scifact_slice, tmp_path, args, expected):
    out = tmp_path / "new" / "idx"
    cache = tmp_path / "cache"
    result = cli("index", "build", "--model", MODEL, "--corpus", str(scifact_slice), "--out", str(out),
                 "--cache-dir", str(cache), *args)  # fmt: skip
    assert expected in one_error_line(result)
    assert not (tmp_path / "new").exists() and not cache.exists(), "nothing is written"
