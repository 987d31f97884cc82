"""A pool of Ray actors that each set up once (open an engine) and then work through items.

The jobs (``p3m.jobs.matte``, ``p3m.jobs.anonymize``) stay what they are: they decide
what to do, skip what is done, write the report. Only the per-item work moves into
actors. Each actor runs the job's own one-item function, so outputs, atomic writes and
per-item failures are those of a single-machine run. Inputs and the output folder must
be at paths every node can read and write (a shared or network file system).
Results come back in input order, so reports are in the same order as a
single-machine run.

An actor that dies mid-job (its process killed, its node gone) does not stop the job:
the item it held runs again on another actor, a new actor takes its place, and stderr
says so in one line. An item whose actors keep dying, or that no actor is left to run,
becomes one failed result (``failed`` of :meth:`ActorPool.map`), so the job still
reports everything else.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections import deque
from typing import Any, Callable, Iterable, Iterator

from p3m.errors import OptionError, P3MError
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

    def ready(self) -> bool:
        """Answers once ``setup`` has run (how a replacement actor is known to have started)."""
        return True

    def run(self, work: Callable[[Any, Any], Any], item: Any) -> Any:
        self._pin_threads()
        return work(self.state, item)


class ClusterError(P3MError):
    """An item the cluster could not run: the workers it was on kept dying, or no worker
    was left. :meth:`ActorPool.map` raises it only when given no ``failed``."""


def _lost(ray) -> tuple[type[BaseException], ...]:
    """The errors of ``ray.get`` that mean the worker holding the task is gone (its process
    killed or crashed, its node gone, killed for memory), not that the work raised."""
    errors = ray.exceptions
    return (errors.RayActorError, errors.WorkerCrashedError, errors.NodeDiedError, errors.OutOfMemoryError)


def _why(exc: BaseException) -> str:
    """One short clause out of Ray's many-line message: the cause, the process and the node."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if getattr(exc, "actor_init_failed", False):
        return f"it could not set up: {lines[-1] if lines else type(exc).__name__}"
    fields = dict(line.split(": ", 1) for line in lines if line.split(": ", 1)[0] in ("pid", "ip"))
    causes = (re.match(r"The actor (?:is dead|died) because (.+)", line) for line in lines)
    cause = next((found[1].split(". ")[0].rstrip(".") for found in causes if found), type(exc).__name__)
    where = " ".join(part for part in (f"pid {fields['pid']}" if "pid" in fields else "",
                                       f"on {fields['ip']}" if "ip" in fields else "") if part)
    return f"{cause}; {where}" if where else cause


class ActorPool:
    """``size`` actors on the cluster, each holding what ``setup`` returned.

    An actor that dies (its process killed or crashed, its node gone) is replaced by a
    new one (which runs ``setup`` again), and the item it held runs again on another
    actor. An item that was on ``retries + 1`` actors that died, or that is left when no
    actor is (none left and none started within ``start_timeout`` seconds), is lost:
    :meth:`map` gives ``failed(item, reason)`` in its place.
    """

    #: How many times an item runs again after the actor running it died.
    retries = 2
    #: Seconds to wait for a replacement actor to start when no other actor is left.
    start_timeout = 300.0

    def __init__(self, options: ClusterOptions, setup: Callable[[], Any]) -> None:
        ray = connect(options.address)
        resources = ray.cluster_resources()
        size = options.actors or max(1, int(resources.get("GPU" if options.gpus_per_actor else "CPU", 1)
                                            // max(options.gpus_per_actor or options.cpus_per_actor, 1e-9)))
        self._remote = ray.remote(num_cpus=options.cpus_per_actor, num_gpus=options.gpus_per_actor)(_Worker)
        self.ray, self.options, self._setup = ray, options, setup
        self.actors = [self._start() for _ in range(size)]

    def _start(self):
        return self._remote.remote(self._setup, self.options.cpus_per_actor)

    def first(self, work: Callable[[Any, Any], Any], item: Any = None) -> Any:
        """``work`` on the first actor (for example, to describe its engine)."""
        return self.ray.get(self.actors[0].run.remote(work, item))

    def map(self, work: Callable[[Any, Any], Any], items: Iterable[Any],
            failed: Callable[[Any, str], Any] | None = None) -> Iterator[Any]:
        """``work(state, item)`` for every item, spread over the actors; results in input order.

        Each item gives exactly one result. One whose actors kept dying, or that no actor
        was left to run, gives ``failed(item, reason)``; without ``failed``, it raises
        :class:`ClusterError` there (after the results before it). Each actor lost is
        one line on stderr.
        """
        ray, items = self.ray, list(items)
        lost_errors = _lost(ray)
        todo = deque(range(len(items)))         # indexes not yet running, retried ones first
        tries = [0] * len(items)
        results: dict[int, Any] = {}            # finished, waiting for their turn in input order
        lost: dict[int, str] = {}               # index -> why it gives up
        running: dict[Any, tuple[Any, int]] = {}  # task -> (actor, index)
        starting: dict[Any, Any] = {}           # ready() call -> replacement actor
        idle = list(self.actors)
        alone_since: float | None = None        # when the last actor was lost, with items left
        following = 0
        while following < len(items):
            if following in results or following in lost:
                if following in results:
                    yield results.pop(following)
                else:
                    reason = lost.pop(following)
                    if failed is None:
                        raise ClusterError(f"item {following + 1} of {len(items)}: {reason}")
                    yield failed(items[following], reason)
                following += 1
                continue
            while todo and idle:
                actor, index = idle.pop(), todo.popleft()
                tries[index] += 1
                running[actor.run.remote(work, items[index])] = actor, index
            if todo and not running:
                if not starting:
                    self._give_up(todo, lost, "every worker died and no replacement started")
                    continue
                alone_since = alone_since if alone_since is not None else time.monotonic()
                timeout = max(0.0, self.start_timeout - (time.monotonic() - alone_since))
            else:
                alone_since, timeout = None, None
            ready, _ = ray.wait([*running, *starting], num_returns=1, timeout=timeout)
            if not ready:
                self._give_up(todo, lost, f"none started within {self.start_timeout:g} s")
                continue
            task = ready[0]
            if task in starting:
                actor = starting.pop(task)
                try:
                    ray.get(task)
                    idle.append(actor)
                except lost_errors as exc:  # not replaced again: a setup that fails would fail again
                    self._forget(actor)
                    _say(f"a replacement cluster worker did not start ({_why(exc)})")
                continue
            actor, index = running.pop(task)
            try:
                results[index] = ray.get(task)
                idle.append(actor)
                continue
            except lost_errors as exc:
                why = _why(exc)
            self._forget(actor)
            replacement = self._start()
            self.actors.append(replacement)
            starting[replacement.ready.remote()] = replacement
            if tries[index] > self.retries:
                lost[index] = f"{tries[index]} cluster workers died while running it ({why}); not tried again"
                _say(f"a cluster worker died ({why}); its item failed: {tries[index]} workers died on it")
            else:
                todo.appendleft(index)
                _say(f"a cluster worker died ({why}); its item runs again on another")

    def _give_up(self, todo: deque, lost: dict[int, str], why: str) -> None:
        """Every item not yet run is lost: no actor is left to run it."""
        _say(f"no cluster worker is left ({why}); the {len(todo)} item{'s' if len(todo) != 1 else ''} "
             "not yet run fail")
        while todo:
            lost[todo.popleft()] = f"no cluster worker was left to run it ({why})"

    def _forget(self, actor) -> None:
        """Drop a dead actor (killed for good, in case Ray would bring it back)."""
        if actor in self.actors:
            self.actors.remove(actor)
        try:
            self.ray.kill(actor, no_restart=True)
        except Exception:  # already gone: nothing to stop
            pass

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []

    def __enter__(self) -> ActorPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _say(line: str) -> None:
    print(f"p3m: {line}", file=sys.stderr, flush=True)
