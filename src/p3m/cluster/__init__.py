"""Batch jobs on a Ray cluster (the ``cluster`` extra): the same jobs, items spread over actors."""

from p3m.utils.lazy import lazy_attributes

_EXPORTS = {"ClusterOptions": "p3m.options", "ActorPool": "p3m.cluster.ray_pool"}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes(__name__, _EXPORTS)
