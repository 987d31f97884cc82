"""Face obfuscation as P3M-10k was made: landmark-based, matting-aware face blur, and a
measured privacy outcome (re-detection, identity distance, matting integrity)."""

from p3m.privacy.anonymize import STRENGTHS, AnonymizeResult, anonymize
from p3m.privacy.audit import audit_pair

__all__ = ["STRENGTHS", "AnonymizeResult", "anonymize", "audit_pair"]
