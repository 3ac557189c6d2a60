"""Ray Data as the executor of batch stages: ``map_batches`` over a pool of model-holding actors.

Each payload is one row of a Ray Dataset; ``actors`` workers (an actor pool, ``concurrency=actors``)
each build the model once from the stage's ``factory`` and apply it row by row. Rows come back to the
driver through ``iter_rows`` as they finish (streaming execution), tagged with their index, and the stage
stores them at once, so work finished before a kill is kept. Payloads and results travel pickled (they
are this job's own objects, never files from elsewhere).
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from retrodistill.errors import require
from retrodistill.executors.options import RayOptions

log = logging.getLogger("retrodistill.executors")


class _Worker:
    """One Ray actor: builds the stage's function once, then maps payload rows to result rows."""

    def __init__(self, factory: Callable[[], Callable[[Any], Any]]) -> None:
        self.fn = factory()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out = [pickle.dumps(self.fn(pickle.loads(p))) for p in batch["payload"]]
        return {"i": batch["i"], "out": out}


class RayExecutor:
    name = "ray"

    def __init__(self, options: RayOptions) -> None:
        self.options = options
        self.ray = require("ray", purpose="executor: ray")
        require("ray.data", purpose="executor: ray")

    def start(self) -> None:
        """Join ``options.address`` or start a local Ray (no dashboard); reuse one already started."""
        ray = self.ray
        if ray.is_initialized():
            return
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if self.options.address is None:
            kwargs["num_cpus"] = self.options.num_cpus
        ray.init(address=self.options.address, **kwargs)
        log.info("ray: %s", ray.cluster_resources())

    def map_payloads(
        self, factory: Callable[[], Callable[[Any], Any]], payloads: Sequence[Any]
    ) -> Iterator[tuple[int, Any]]:
        if not payloads:
            return
        self.start()
        data = self.ray.data
        data.DataContext.get_current().enable_progress_bars = False
        rows = [{"i": i, "payload": pickle.dumps(p)} for i, p in enumerate(payloads)]
        ds = data.from_items(rows, override_num_blocks=len(rows))
        ds = ds.map_batches(
            _Worker,
            fn_constructor_kwargs={"factory": factory},
            batch_size=1,
            concurrency=min(self.options.actors, len(rows)),
            num_cpus=self.options.cpus_per_actor,
            num_gpus=self.options.gpus_per_actor or None,
        )
        for row in ds.iter_rows():
            yield int(row["i"]), pickle.loads(row["out"])
