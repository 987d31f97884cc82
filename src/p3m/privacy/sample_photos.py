"""Labelled real photos for measuring face-detection recall, taken from registry packages.

Two source archives on PyPI carry real photos of people: the insightface 0.7.3 sdist (a
group photo of six, ``t1.jpg``, and an aligned 112 px face) and the face_recognition
1.3.0 sdist (portraits of Barack Obama and Joe Biden, two cut by the frame). They are
downloaded once (``fetch_sample_photos``), checked against pinned SHA-256 hashes, and
only the photos are kept.

The face boxes below (left, top, right, bottom) were drawn by hand for the group photo
and checked by eye for the portraits; they were not used to choose any detector
setting. ``ignore`` boxes are faces that are not people (a painted portrait on the wall):
a detection there is neither a hit nor a false positive.
"""

from __future__ import annotations

import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from p3m.errors import CheckpointError
from p3m.utils.files import atomic_path, file_sha256

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Archive:
    url: str
    sha256: str


INSIGHTFACE = Archive("https://files.pythonhosted.org/packages/0b/8d/0f4af90999ca96cf8cb846eb5ae27c5ef5b390f9c090dd19"
                      "e4fa76364c13/insightface-0.7.3.tar.gz",
                      "f191f719612ebb37018f41936814500544cd0f86e6fcd676c023f354c668ddf7")
FACE_RECOGNITION = Archive("https://files.pythonhosted.org/packages/6c/49/75dda409b94841f01cbbc34114c9b67ec618265084e"
                           "4d12d37ab838f4fd3/face_recognition-1.3.0.tar.gz",
                           "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec")


@dataclass(frozen=True)
class LabelledPhoto:
    name: str
    archive: Archive
    member: str
    faces: tuple[Box, ...]
    people: tuple[str, ...]                 # who each face is (for identity references)
    turned: tuple[bool, ...] = ()           # faces turned well away from the camera (three-quarter or more)
    ignore: tuple[Box, ...] = field(default=())


_FR = "face_recognition-1.3.0/tests/test_images/"
PHOTOS = (
    LabelledPhoto("group", INSIGHTFACE, "insightface-0.7.3/insightface/data/images/t1.jpg",
                  ((60, 270, 165, 385), (270, 150, 395, 265), (462, 260, 590, 385), (745, 330, 870, 455),
                   (905, 60, 1030, 205), (1130, 275, 1240, 395)),
                  ("group-1", "group-2", "group-3", "group-4", "group-5", "group-6"),
                  turned=(False, True, False, False, True, False), ignore=((300, 50, 365, 105),)),
    LabelledPhoto("hanks", INSIGHTFACE, "insightface-0.7.3/insightface/data/images/Tom_Hanks_54745.png",
                  ((6, 26, 96, 116),), ("hanks",)),
    LabelledPhoto("biden", FACE_RECOGNITION, _FR + "biden.jpg", ((419, 241, 740, 562),), ("biden",)),
    LabelledPhoto("obama", FACE_RECOGNITION, _FR + "obama.jpg", ((349, 142, 617, 409),), ("obama",)),
    LabelledPhoto("obama2", FACE_RECOGNITION, _FR + "obama2.jpg", ((171, 290, 438, 558),), ("obama",)),
    LabelledPhoto("obama3", FACE_RECOGNITION, _FR + "obama3.jpg", ((633, 277, 954, 598),), ("obama",)),
    LabelledPhoto("obama-cut-left", FACE_RECOGNITION, _FR + "obama_partial_face.jpg", ((0, 142, 191, 365),),
                  ("obama",)),
    LabelledPhoto("obama-cut-right", FACE_RECOGNITION, _FR + "obama_partial_face2.jpg", ((349, 142, 551, 409),),
                  ("obama",)),
)


def fetch_sample_photos(folder: Path) -> dict[str, Path]:
    """The photos of :data:`PHOTOS` in ``folder`` (downloaded and verified on first use)."""
    from p3m.weights.download import download

    folder = Path(folder)
    paths = {photo.name: folder / f"{photo.name}{Path(photo.member).suffix}" for photo in PHOTOS}
    missing = [photo for photo in PHOTOS if not paths[photo.name].is_file()]
    for archive in {photo.archive for photo in missing}:
        with tempfile.TemporaryDirectory(prefix="p3m-photos-") as tmp:
            tarball = download(archive.url, Path(tmp), name=archive.url.rsplit("/", 1)[-1])
            if file_sha256(tarball) != archive.sha256:
                raise CheckpointError(f"{archive.url}: SHA-256 {file_sha256(tarball)} is not the pinned {archive.sha256}")
            with tarfile.open(tarball) as tar:
                for photo in (p for p in missing if p.archive == archive):
                    data = tar.extractfile(photo.member).read()
                    with atomic_path(paths[photo.name]) as tmp_path:
                        tmp_path.write_bytes(data)
    return paths
