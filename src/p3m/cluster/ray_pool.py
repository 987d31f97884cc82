"""A pool of Ray actors that each set up once (open an engine) and then work through items.

The jobs (``p3m.jobs.matte``, ``p3m.jobs.anonymize``) stay what they are: they decide
what to do, skip what is done, write the report. Only the per-item work moves into
actors. Each actor runs the job's own one-item function, so outputs, atomic writes and
per-item failures are those of a single-machine run. Inputs and the output folder must
be at paths every node can read and write (a shared or network file system).
Results come back in input order, so reports are in the same order as a
single-machine run.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Iterator

from p3m.errors import OptionError
from p3m.options import ClusterOptions
from p3m.utils.optional import require


def _ray():
    return require("ray", "cluster", "running on a Ray cluster")


def connect(address: str):
    """Join the cluster at ``address`` (once per process)."""
    ray = _ray()
    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        try:
            ray.init(address=None if address == "auto" and "RAY_ADDRESS" in os.environ else address,
                     log_to_driver=False, configure_logging=False)
        except ConnectionError as exc:
            raise OptionError(f"--cluster {address}: no Ray cluster there ({exc}); start one with "
                              "'ray start --head' or give its HOST:PORT") from None
    return ray


class _Worker:
    """One actor: ``setup()`` once, then ``work(state, item)`` per item.

    PyTorch in an actor uses as many threads as the CPUs the actor reserved, set on
    the thread that runs each call. Ray does not make that so in every case (actors of
    a cluster started from some processes ran on 2 threads with 1 CPU reserved, and a
    network's output depends on its thread count in the last bits).
    """

    def __init__(self, setup: Callable[[], Any], cpus: float) -> None:
        self.threads = max(1, int(cpus))
        self._pin_threads()
        self.state = setup()

    def _pin_threads(self) -> None:
        import sys

        torch = sys.modules.get("torch")
        if torch is not None and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

    def run(self, work: Callable[[Any, Any], Any], item: Any) -> Any:
        self._pin_threads()
        return work(self.state, item)


class ActorPool:
    """``size`` actors on the cluster, each holding what ``setup`` returned."""

    def __init__(self, options: ClusterOptions, setup: Callable[[], Any]) -> None:
        ray = connect(options.address)
        resources = ray.cluster_resources()
        size = options.actors or max(1, int(resources.get("GPU" if options.gpus_per_actor else "CPU", 1)
                                            // max(options.gpus_per_actor or options.cpus_per_actor, 1e-9)))
        remote = ray.remote(num_cpus=options.cpus_per_actor, num_gpus=options.gpus_per_actor)(_Worker)
        self.ray, self.options = ray, options
        self.actors = [remote.remote(setup, options.cpus_per_actor) for _ in range(size)]

    def first(self, work: Callable[[Any, Any], Any], item: Any = None) -> Any:
        """``work`` on the first actor (for example, to describe its engine)."""
        return self.ray.get(self.actors[0].run.remote(work, item))

    def map(self, work: Callable[[Any, Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        """``work(state, item)`` for every item, spread over the actors; results in input order."""
        from ray.util import ActorPool as RayActorPool

        pool = RayActorPool(self.actors)
        yield from pool.map(lambda actor, item: actor.run.remote(work, item), list(items))

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []

    def __enter__(self) -> ActorPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
