"""Training jobs: students (bi-encoder, ColBERT) and the cross-encoder teacher, above the models they train.

STUDENTS maps ``StudentConfig.student`` to its trainer; ``train_student`` dispatches through it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from retrodistill.registry import Registry

if TYPE_CHECKING:
    from retrodistill.training.common import TrainResult
    from retrodistill.training.config import StudentConfig

STUDENTS = Registry("student")
STUDENTS.register("bi-encoder", "retrodistill.training.student:train_bi_encoder", "sentence-transformers bi-encoder")
STUDENTS.register("colbert", "retrodistill.training.colbert:train_colbert", "ColBERT late interaction, MaxSim")


def train_student(config: StudentConfig, show_progress: bool = True) -> TrainResult:
    """Train (or resume) the student ``config`` names; returns where it went and its evaluation."""
    return STUDENTS.get(config.student)(config, show_progress)
