"""Face obfuscation as P3M-10k was made: landmark-based, matting-aware face blur that
fails closed (:func:`anonymize`), and a measured privacy outcome (re-detection,
identity distance, matting integrity)."""

from p3m.privacy.anonymize import STRENGTHS, AnonymizeResult, Outcome, anonymize
from p3m.privacy.audit import audit_pair
from p3m.privacy.blur import blur_faces

__all__ = ["STRENGTHS", "AnonymizeResult", "Outcome", "anonymize", "audit_pair", "blur_faces"]
