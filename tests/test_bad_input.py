"""Bad input through the real CLI: every unreadable, undecodable or broken file is one line, exit 2.

Each case breaks one file of a tiny BEIR folder (invalid UTF-8, a ``.gz`` that is not gzip, a truncated
gzip, a folder where a file belongs) and runs every command that reads it as a subprocess. The error
must be exactly one stderr line ``retrodistill: error: ...`` naming the file, and no output is created.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from retrodistill.cli.main import main

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DOCS = [
    {"_id": "d1", "title": "Vitamin D", "text": "Vitamin D improves bone density in the elderly."},
    {"_id": "d2", "title": "Smoking", "text": "Cigarette smoking causes lung cancer."},
    {"_id": "d3", "title": "Weather", "text": "The weather in Paris is mild in spring."},
]
QUERIES = [{"_id": "q1", "text": "vitamin d bones"}, {"_id": "q2", "text": "smoking cancer"}]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n"
BAD_UTF8 = b"\xff\xfe not utf-8 \xc3\x28"


def _jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def make_folder(root: Path) -> Path:
    """A valid three-document BEIR folder."""
    folder = root / "beir"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_bytes(_jsonl(DOCS))
    (folder / "queries.jsonl").write_bytes(_jsonl(QUERIES))
    (folder / "qrels" / "test.tsv").write_text(QRELS)
    return folder


def _replace(folder: Path, name: str, new_name: str, content: bytes | None) -> str:
    """Remove ``name``; write ``new_name`` with ``content`` (a folder when None). Returns the broken file."""
    os.unlink(folder / name)
    target = folder / new_name
    if content is None:
        target.mkdir()
    else:
        target.write_bytes(content)
    return new_name


def _gzipped(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


# (case id, function breaking the folder -> relative path of the broken file, words the message must hold)
CASES = {
    "corpus-invalid-utf8": (
        lambda f: _replace(f, "corpus.jsonl", "corpus.jsonl", _jsonl(DOCS[:1]) + BAD_UTF8 + b"\n"),
        ":2: not valid UTF-8",
    ),
    "corpus-gz-not-gzip": (
        lambda f: _replace(f, "corpus.jsonl", "corpus.jsonl.gz", _jsonl(DOCS)),
        "not a gzip file",
    ),
    "corpus-gz-truncated": (
        lambda f: _replace(f, "corpus.jsonl", "corpus.jsonl.gz", _gzipped(_jsonl(DOCS * 20))[:-30]),
        "truncated",
    ),
    "corpus-gz-invalid-utf8": (
        lambda f: _replace(f, "corpus.jsonl", "corpus.jsonl.gz", _gzipped(_jsonl(DOCS) + BAD_UTF8)),
        ":4: not valid UTF-8",
    ),
    "corpus-is-a-folder": (lambda f: _replace(f, "corpus.jsonl", "corpus.jsonl", None), "is a folder"),
    "queries-invalid-utf8": (
        lambda f: _replace(f, "queries.jsonl", "queries.jsonl", BAD_UTF8 + b"\n"),
        ":1: not valid UTF-8",
    ),
    "queries-gz-truncated": (
        lambda f: _replace(f, "queries.jsonl", "queries.jsonl.gz", _gzipped(_jsonl(QUERIES * 50))[:-20]),
        "truncated",
    ),
    "qrels-invalid-utf8": (
        lambda f: _replace(f, "qrels/test.tsv", "qrels/test.tsv", QRELS.encode() + b"q3\t" + BAD_UTF8 + b"\t1\n"),
        ":4: not valid UTF-8",
    ),
}

# command name -> argv builder (folder, output path, tmp_path); index build reads only the corpus
COMMANDS = {
    "data": lambda d, out, tmp: ["data", "-d", str(d)],
    "eval": lambda d, out, tmp: ["eval", "-d", str(d), "-s", "bm25s", "-o", str(out)],
    "teach": lambda d, out, tmp: ["teach", "-t", f"cross-encoder:{MODEL}", "-s", str(out), "--dataset", str(d)],
    "train": lambda d, out, tmp: ["train", str(_train_config(tmp, d, out))],
    "index-build": lambda d, out, tmp: ["index", "build", "--model", MODEL, "--corpus", str(d), "--out", str(out)],
}


def _train_config(tmp: Path, folder: Path, out: Path) -> Path:
    path = tmp / "train.json"
    path.write_text(json.dumps({"dataset": str(folder), "split": "test", "output": str(out), "max_steps": 1}))
    return path


def run_cli(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "retrodistill.cli.main", "-q", *argv]
    return subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **kwargs.pop("env", {})}, **kwargs)


def assert_one_line_error(done: subprocess.CompletedProcess, *words: str) -> str:
    assert done.returncode == 2, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("retrodistill: error: "), done.stderr[-3000:]
    for word in words:
        assert word in lines[0]
    return lines[0]


PAIRS = [(c, k) for c in CASES for k in COMMANDS if k != "index-build" or c.startswith("corpus")]


@pytest.mark.parametrize(("case", "command"), PAIRS, ids=[f"{k}-{c}" for c, k in PAIRS])
def test_a_broken_input_file_is_one_line_and_writes_nothing(case, command, tmp_path):
    folder = make_folder(tmp_path)
    breaker, words = CASES[case]
    broken = breaker(folder)
    out = tmp_path / "out"
    argv = COMMANDS[command](folder, out, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    done = run_cli(argv, cwd=tmp_path)
    assert_one_line_error(done, str(folder / broken), words)
    assert not out.exists() and not Path(f"{out}.json").exists()
    after = sorted(p.name for p in tmp_path.iterdir())
    assert after == before  # no eval/runs or other default folder either


def test_the_untouched_folder_loads(tmp_path, capsys):
    """The table above fails for the broken file, not for the rest of the folder."""
    assert main(["data", "-d", str(make_folder(tmp_path))]) == 0
    assert "judged queries" in capsys.readouterr().out


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX permissions")
def test_a_file_without_read_permission_is_one_line(tmp_path):
    """As root, permission bits do not apply: the command then runs as the unprivileged user ``nobody``."""
    root = Path(tempfile.mkdtemp(prefix="rd-perm-"))
    try:
        folder = make_folder(root)
        for path in [root, *root.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        os.chmod(folder / "corpus.jsonl", 0o000)
        user = {"user": "nobody", "group": "nogroup"} if os.geteuid() == 0 else {}
        if user:
            try:
                probe = subprocess.run([sys.executable, "-c", "import retrodistill"], capture_output=True, **user)
            except (KeyError, PermissionError, OSError) as exc:
                pytest.skip(f"cannot run as nobody here ({exc})")
            if probe.returncode != 0:
                pytest.skip("the package is not readable by nobody here")
        done = run_cli(["data", "-d", str(folder)], cwd=root, env={"HOME": str(root)}, **user)
        assert_one_line_error(done, str(folder / "corpus.jsonl"), "permission denied")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_a_bad_option_value_and_a_bad_config_file_are_one_line(tmp_path):
    folder = make_folder(tmp_path)
    assert_one_line_error(run_cli(["eval", "-d", str(folder), "-s", "bm25s", "--k", "ten"]), "--k", "ten")
    config = tmp_path / "eval.json"
    config.write_bytes(b'{"dataset": "' + BAD_UTF8 + b'"}')
    assert_one_line_error(run_cli(["eval", "--config", str(config)]), str(config), "not valid UTF-8")
    config.unlink()
    config.mkdir()
    assert_one_line_error(run_cli(["train", str(config)]), str(config))


def test_an_unexpected_error_is_one_line_exit_1_and_a_traceback_on_request(monkeypatch, capsys):
    """The last-resort handler: a bug (here a handler dividing by zero) is reported, not dumped."""
    import retrodistill.cli.data_cmd as data_cmd

    def broken(args) -> int:
        return 1 // 0

    monkeypatch.setattr(data_cmd, "run", broken)
    monkeypatch.delenv("RETRODISTILL_DEBUG", raising=False)
    assert main(["data", "-d", "x"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "retrodistill: error: internal error: ZeroDivisionError: integer division or modulo by zero "
        "(set RETRODISTILL_DEBUG=1 for the traceback)"
    ]
    monkeypatch.setenv("RETRODISTILL_DEBUG", "1")
    assert main(["data", "-d", "x"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "1 // 0" in err
    assert err.strip().splitlines()[-1].startswith("retrodistill: error: internal error: ZeroDivisionError")

    def interrupted(args) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(data_cmd, "run", interrupted)
    assert main(["data", "-d", "x"]) == 130
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
