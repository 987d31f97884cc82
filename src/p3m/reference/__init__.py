"""Numerical reference of the published networks (fixtures shipped with the package)."""

from p3m.reference.fixture import (
    OUTPUT_NAMES,
    compare_outputs,
    load_loss_reference,
    load_manifest,
    load_reference_model,
    load_reference_outputs,
    run_reference_check,
)
from p3m.reference.weights import reference_state_dict, reference_value

__all__ = [
    "OUTPUT_NAMES",
    "compare_outputs",
    "load_loss_reference",
    "load_manifest",
    "load_reference_model",
    "load_reference_outputs",
    "reference_state_dict",
    "reference_value",
    "run_reference_check",
]
