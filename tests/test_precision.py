"""Precision ``auto``: bfloat16 only where the hardware computes it natively and it is measured faster."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from retrodistill import precision
from retrodistill.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "eval" / "configs"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture
def cpu(monkeypatch):
    """Set whether the CPU has native bfloat16 (and whether it pays); the override variable and the warn-once
    memory are cleared."""
    monkeypatch.delenv(precision.ENV, raising=False)
    monkeypatch.setattr(precision, "_warned", set())

    def set_native(native: bool, pays: bool | None = None) -> None:
        pays = native if pays is None else pays
        monkeypatch.setattr(precision, "native_bf16", lambda device="cpu": native and device == "cpu")
        monkeypatch.setattr(precision, "bf16_pays", lambda device="cpu": pays and device == "cpu")

    return set_native


def test_auto_is_float32_on_avx2_and_bfloat16_with_avx512_bf16(cpu):
    cpu(False)
    assert precision.resolve_precision("auto", "cpu") == "float32"
    assert precision.resolve_precision("float32", "cpu") == "float32"
    cpu(True)
    assert precision.resolve_precision("auto", "cpu") == "bfloat16"
    assert precision.resolve_precision("float32", "cpu") == "float32"
    assert precision.resolve_precision("auto", "mps") == "float32"
    with pytest.raises(ConfigError, match="auto, float32, bfloat16"):
        precision.resolve_precision("float16", "cpu")


def test_explicit_bfloat16_without_native_support_warns_once_and_proceeds(cpu, caplog):
    cpu(False)
    with caplog.at_level(logging.WARNING, logger="retrodistill.precision"):
        assert precision.resolve_precision("bfloat16", "cpu") == "bfloat16"
        assert precision.resolve_precision("bfloat16", "cpu") == "bfloat16"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "6x slower" in warnings[0].getMessage()
    cpu(True)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="retrodistill.precision"):
        precision.resolve_precision("bfloat16", "cpu")
    assert not caplog.records


def test_native_but_measured_slower_is_float32_and_an_explicit_request_says_why(cpu, caplog):
    cpu(True, pays=False)
    assert precision.resolve_precision("auto", "cpu") == "float32"
    with caplog.at_level(logging.WARNING, logger="retrodistill.precision"):
        assert precision.resolve_precision("bfloat16", "cpu") == "bfloat16"
    assert "measured slower" in caplog.records[-1].getMessage()


def test_the_probe_times_both_precisions_and_reports_their_ratio():
    result = precision.bf16_speedup(repeats=1)
    assert result["float32_s"] > 0 and result["bfloat16_s"] > 0
    assert result["speedup"] == pytest.approx(result["float32_s"] / result["bfloat16_s"])


@pytest.mark.parametrize("mode", ["inference_mode", "no_grad"])
def test_the_probe_measures_from_inside_a_callers_no_grad_block(mode):
    import torch

    with getattr(torch, mode)():  # teachers resolve their dtype lazily inside their forward's block
        result = precision.bf16_speedup(repeats=1)
        assert not torch.is_grad_enabled()  # the caller's mode is back once the probe returns
    assert result["float32_s"] > 0 and result["bfloat16_s"] > 0


def test_the_probe_verdict_is_kept_per_machine_and_a_bad_file_is_measured_again(monkeypatch, tmp_path, request):
    request.addfinalizer(precision.cpu_bf16_pays.cache_clear)  # no patched verdict outlives the test
    monkeypatch.setenv("RETRODISTILL_CACHE", str(tmp_path))
    monkeypatch.setattr(precision, "_cpu_has_bf16", lambda: True)
    measured: list[int] = []

    def probe(speedup: float):
        def run(repeats: int = 5) -> dict[str, float]:
            measured.append(1)
            return {"float32_s": 0.02 * speedup, "bfloat16_s": 0.02, "speedup": float(speedup)}

        return run

    def verdict() -> bool:
        precision.cpu_bf16_pays.cache_clear()
        return precision.cpu_bf16_pays()

    monkeypatch.setattr(precision, "bf16_speedup", probe(0.65))
    assert verdict() is False and len(measured) == 1
    (kept,) = (tmp_path / "precision").glob("*.json")
    assert json.loads(kept.read_text())["speedup"] == 0.65
    monkeypatch.setattr(precision, "bf16_speedup", probe(3.0))
    assert verdict() is False and len(measured) == 1  # the machine's kept verdict, not a new measurement
    kept.write_text("{not json")
    assert verdict() is True and len(measured) == 2
    assert json.loads(kept.read_text())["speedup"] == 3.0
    monkeypatch.setattr(precision, "_cpu_has_bf16", lambda: False)
    assert verdict() is False and len(measured) == 2  # no native bfloat16: nothing to measure


def test_the_environment_overrides_auto_only(cpu, monkeypatch):
    cpu(True)
    monkeypatch.setenv(precision.ENV, "float32")
    assert precision.resolve_precision("auto", "cpu") == "float32"
    assert precision.resolve_precision("bfloat16", "cpu") == "bfloat16"
    monkeypatch.setenv(precision.ENV, "fp8")
    with pytest.raises(ConfigError, match="RETRODISTILL_PRECISION"):
        precision.resolve_precision("auto", "cpu")


def test_the_deprecated_bf16_key_is_read_as_precision(tmp_path):
    from pydantic import ValidationError

    from retrodistill.training.config import StudentConfig
    from retrodistill.training.teacher import TrainConfig

    assert TrainConfig(dataset="d", output=str(tmp_path)).precision == "auto"
    assert TrainConfig(dataset="d", output=str(tmp_path), bf16=True).precision == "bfloat16"
    assert StudentConfig(dataset="d", output=str(tmp_path), bf16=False).precision == "float32"
    with pytest.raises(ValidationError, match="deprecated alias"):
        StudentConfig(dataset="d", output=str(tmp_path), bf16=True, precision="auto")
    with pytest.raises(ValidationError, match="precision"):
        TrainConfig(dataset="d", output=str(tmp_path), precision="fp16")


def test_the_demo_configs_hard_code_no_bfloat16():
    from retrodistill.pipeline import DistillConfig
    from retrodistill.teachers import build_teacher
    from retrodistill.training.config import StudentConfig
    from retrodistill.training.teacher import TrainConfig

    teacher = json.loads((CONFIGS / "demo" / "ce-scifact.json").read_text())
    distill = json.loads((CONFIGS / "demo" / "distill-scifact.json").read_text())
    for raw in (teacher, distill, distill["student"]):
        assert "bf16" not in raw and raw.get("precision", "auto") == "auto"
    assert "bfloat16" not in json.dumps(teacher) + json.dumps(distill)
    assert TrainConfig(**teacher).precision == "auto"
    config = DistillConfig(**distill)
    assert StudentConfig(**config.student, dataset="d", output="o").precision == "auto"
    assert build_teacher(config.teacher.replace("models/ce-scifact-demo/model", MODEL)).requested_dtype == "auto"


def test_every_training_config_loads_with_its_precision():
    from retrodistill.pipeline import DistillConfig
    from retrodistill.training.config import StudentConfig
    from retrodistill.training.teacher import TrainConfig

    checked = 0
    for path in sorted(CONFIGS.rglob("*.json")):
        raw = json.loads(path.read_text())
        assert "bf16" not in json.dumps(raw), path
        if isinstance(raw.get("student"), str):  # a `retrodistill train` config (student kind + model)
            StudentConfig(**raw)
        elif "base_model" in raw or "negatives" in raw:
            TrainConfig(**raw)
        elif "student" in raw:
            raw.pop("variants", None)
            StudentConfig(**DistillConfig(**raw).student, dataset="d", output="o")
        else:
            continue
        checked += 1
    assert checked >= 9


def test_a_teacher_with_dtype_auto_is_stored_under_its_resolved_dtype(cpu):
    from retrodistill.teachers.cross_encoder import CrossEncoderTeacher

    fp32 = CrossEncoderTeacher(MODEL, dtype="float32", device="cpu").spec.fingerprint()
    bf16 = CrossEncoderTeacher(MODEL, dtype="bfloat16", device="cpu").spec.fingerprint()
    assert fp32 != bf16
    cpu(False)
    auto = CrossEncoderTeacher(MODEL, device="cpu")
    assert auto.dtype == "float32" and "dtype" not in auto.spec.options
    assert auto.spec.fingerprint() == fp32
    cpu(True)
    auto = CrossEncoderTeacher(MODEL, dtype="auto", device="cpu")
    assert auto.dtype == "bfloat16" and auto.spec.options["dtype"] == "bfloat16"
    assert auto.spec.fingerprint() == bf16
