"""Blur strength against privacy and image change, measured on real faces.

Faces: the 100 real face crops of scikit-image's LFW subset (Labeled Faces in the Wild,
25 x 25 grayscale, upscaled to 200 x 200 and padded) plus scikit-image's astronaut.
For each strength: how many confident faces the detector still finds in the blurred
region (re-detection), how many blurred faces are within dlib's same-person distance of
the original (identity match), and how much of the image changed inside and outside
the face masks.

    python benchmarks/privacy_tradeoff.py
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage import data

from p3m.privacy import audit_pair
from p3m.privacy.anonymize import STRENGTHS
from p3m.privacy.blur import blur_faces

#: The table in docs/privacy.md was measured with dlib's HOG alone: it is about blur
#: strength, not recall (recall: benchmarks/privacy_recall.py).
DETECTOR = "hog"


def real_faces() -> list[np.ndarray]:
    images = []
    for crop in data.lfw_subset()[:100]:
        big = cv2.resize((crop * 255).astype(np.uint8), (200, 200), interpolation=cv2.INTER_CUBIC)
        padded = cv2.copyMakeBorder(big, 60, 60, 60, 60, cv2.BORDER_REPLICATE)
        images.append(np.repeat(padded[..., None], 3, axis=2))
    return images + [data.astronaut()]


def main() -> None:
    images = real_faces()
    rows = {"0.02 (very weak)": 0.02, **{f"{v} ({k})": v for k, v in STRENGTHS.items()}}
    print(f"{len(images)} real photos (100 LFW faces + the astronaut)")
    print("| sigma / face width | faces blurred | re-detected | identity-audited | identity matches | "
          "changed pixels in the image | changed outside the masks |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, scale in rows.items():
        blurred = audited = redetected = matches = 0
        changed_fraction, outside = [], 0
        for image in images:
            result = blur_faces(image, sigma_scale=scale, detector=DETECTOR)
            if result.image is None:
                continue
            audit = audit_pair(image, result.image, faces=result.detected, face_mask=result.mask, detector=DETECTOR)
            blurred += audit.faces
            audited += len(audit.distances)
            redetected += audit.redetected
            matches += audit.identity_matches
            changed = (image != result.image).any(axis=2)
            changed_fraction.append(changed.mean())
            outside += int((changed & (result.mask == 0)).sum())
        print(f"| {label} | {blurred} | {redetected} ({redetected / max(blurred, 1):.0%}) | {audited} | "
              f"{matches} ({matches / max(audited, 1):.0%}) | {np.mean(changed_fraction):.1%} | {outside} px |")


if __name__ == "__main__":
    main()
