"""Settings of the Ray Data executor."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RayOptions(BaseModel):
    """``executor: ray``: ``address`` None starts a Ray instance in this process (``num_cpus`` of this
    machine, all when None), ``"auto"`` or ``host:port`` joins a running cluster; ``actors`` model-holding
    workers, each reserving ``cpus_per_actor`` CPUs and ``gpus_per_actor`` GPUs (fractions allowed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: str | None = None
    actors: int = Field(2, ge=1)
    cpus_per_actor: float = Field(1.0, gt=0)
    gpus_per_actor: float = Field(0.0, ge=0)
    num_cpus: int | None = Field(None, ge=1)
