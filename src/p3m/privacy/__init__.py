"""Face obfuscation as P3M-10k was made: landmark-based, matting-aware face blur that
fails closed (:func:`anonymize`), and a measured privacy outcome (re-detection,
identity distance, matting integrity). The unchecked blur it repeats,
:func:`p3m.privacy.blur.blur_faces`, is for experiments, never to publish an image."""

from p3m.privacy.anonymize import STRENGTHS, AnonymizeResult, Outcome, anonymize
from p3m.privacy.audit import audit_pair

__all__ = ["STRENGTHS", "AnonymizeResult", "Outcome", "anonymize", "audit_pair"]
