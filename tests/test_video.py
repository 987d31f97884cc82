"""Video: streamed matting of generated clips, every output kind, timing, rotation,
audio, bad input, atomic outputs, temporal consistency, ProRes cut-outs."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from p3m.errors import OptionError
from p3m.inference.engine import MattingEngine
from p3m.jobs.matte import MatteOptions, matte_files
from p3m.jobs.results import Status
from p3m.video import EdgeSmoother, FlowSmoother, VideoReader, matte_frames
from p3m.video.synthetic import PARTS, moving_portrait, noisy_still, write_clip

av = pytest.importorskip("av")


class BrightnessEngine(MattingEngine):
    """Alpha = brightness: cheap, deterministic, and it follows the pixels (noise included)."""

    description = "brightness"

    def __init__(self, fail_after: int | None = None) -> None:
        self.shapes: list[tuple[int, int]] = []
        self.fail_after = fail_after

    def predict(self, images):
        self.shapes += [image.shape[:2] for image in images]
        if self.fail_after is not None and len(self.shapes) > self.fail_after:
            raise RuntimeError("engine stopped")
        return [image.mean(axis=2).astype(np.float32) / 255 for image in images]


def portrait(h: int = 96, w: int = 128) -> np.ndarray:
    return cv2.resize(data.astronaut(), (w, h), interpolation=cv2.INTER_AREA)


def frames_of(path: Path) -> tuple[list, list[np.ndarray], object]:
    with VideoReader(path) as reader:
        pts, images = zip(*reader.frames())
        return list(pts), list(images), reader.info


def decode_rgba_webm(path: Path) -> list[np.ndarray]:
    """VP9 alpha is read by libvpx's decoder (FFmpeg's own drops it)."""
    decoder = av.CodecContext.create("libvpx-vp9", "r")
    out = []
    with av.open(str(path)) as container:
        for packet in container.demux(container.streams.video[0]):
            out += [f.to_ndarray(format="rgba") for f in decoder.decode(packet)]
    return out


@pytest.fixture
def still_clip(tmp_path) -> Path:
    path = tmp_path / "in" / "talk.mp4"
    path.parent.mkdir()
    write_clip(path, noisy_still(portrait(), 10), audio=True)
    return path


def test_every_output_kind_with_timing_and_audio_kept(still_clip, tmp_path):
    out = tmp_path / "out"
    engine = BrightnessEngine()
    result = matte_files(engine, [still_clip], out, MatteOptions(save=("alpha", "composite", "cutout", "frames"),
                                                                  temporal="off"))
    assert result.ok and result.done == 1
    assert "(10 frames, " in result.line() and "frames/s)" in result.line() and "per image" not in result.line()
    pts_in, frames_in, info_in = frames_of(still_clip)
    expected = [f.mean(axis=2) for f in frames_in]

    pts, alphas, info = frames_of(out / "alpha" / "talk.mp4")
    assert len(alphas) == len(frames_in) == 10 and (info.width, info.height) == (128, 96)
    assert [p * info.time_base for p in pts] == [p * info_in.time_base for p in pts_in]
    for got, want in zip(alphas, expected):
        assert np.abs(got[..., 0].astype(float) - want).mean() < 3  # H.264 at crf 16
    with av.open(str(out / "composite" / "talk.mp4")) as container:
        assert [s.codec_context.name for s in container.streams.audio] == ["aac"]
    with av.open(str(out / "cutout" / "talk.webm")) as container:
        assert [s.codec_context.name for s in container.streams.audio] == ["opus"]
    cutouts = decode_rgba_webm(out / "cutout" / "talk.webm")
    assert len(cutouts) == 10 and cutouts[0].shape == (96, 128, 4)
    assert np.abs(cutouts[0][..., 3].astype(float) - expected[0]).mean() < 4
    pngs = sorted((out / "frames" / "talk").glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:06d}.png" for i in range(10)]
    first = np.asarray(Image.open(pngs[0]))
    assert first.shape == (96, 128, 4) and np.abs(first[..., 3].astype(float) - expected[0]).max() <= 1
    # a second run resumes: everything is there, nothing is redone
    again = matte_files(engine, [still_clip], out, MatteOptions(save=("alpha", "composite", "cutout", "frames"),
                                                                 temporal="off"))
    assert again.skipped == 1 and again.done == 0


def test_a_rotated_phone_video_is_matted_upright_and_keeps_its_rotation(tmp_path):
    clip = tmp_path / "phone.mp4"
    upright = noisy_still(portrait(96, 64), 3)  # a portrait-format frame
    write_clip(clip, upright, rotation=90)
    engine = BrightnessEngine()
    assert matte_files(engine, [clip], tmp_path / "out", MatteOptions(save=("alpha",), temporal="off")).ok
    assert set(engine.shapes) == {(96, 64)}  # the engine saw people the right way up
    _, frames, info = frames_of(tmp_path / "out" / "alpha" / "phone.mp4")
    assert info.rotation == 90 and frames[0].shape == (96, 64, 3)  # the display matrix is kept
    assert np.abs(frames[0][..., 0].astype(float) - upright[0].mean(axis=2)).mean() < 4  # and the orientation


def test_variable_frame_rate_odd_size_and_10_bit_inputs(tmp_path):
    times = [0, 1, 3, 4, 8, 9]
    clips = {"vfr.mp4": dict(pts=times, time_base=Fraction(1, 25)),
             "odd.mp4": dict(pix_fmt="yuv444p"),
             "ten.mp4": dict(pix_fmt="yuv420p10le")}
    for name, options in clips.items():
        size = (47, 63) if name == "odd.mp4" else (48, 64)
        write_clip(tmp_path / name, noisy_still(portrait(*size), len(times)), **options)
    out = tmp_path / "out"
    result = matte_files(BrightnessEngine(), [tmp_path / n for n in clips], out, MatteOptions(save=("alpha",)))
    assert result.ok and result.done == 3
    pts, _, info = frames_of(out / "alpha" / "vfr.mp4")
    assert [p * info.time_base for p in pts] == [Fraction(t, 25) for t in times]  # the gaps are kept
    _, frames, info = frames_of(out / "alpha" / "odd.mp4")
    assert (info.width, info.height) == (63, 47) and frames[0].shape[:2] == (47, 63)
    _, frames, _ = frames_of(out / "alpha" / "ten.mp4")
    assert len(frames) == len(times)


def test_bad_videos_get_one_line_and_the_batch_goes_on(still_clip, tmp_path):
    folder = still_clip.parent
    (folder / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    (folder / "truncated.mp4").write_bytes(still_clip.read_bytes()[:1500])
    with av.open(str(folder / "sound.mp4"), "w") as container:  # audio only
        stream = container.add_stream("aac", rate=44100)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="flt", layout="mono")
        frame.sample_rate = 44100
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    out = tmp_path / "out"
    result = matte_files(BrightnessEngine(), [folder], out, MatteOptions(save=("alpha", "cutout")))
    by_name = {Path(r.name).name: r for r in result.records}
    assert by_name["talk.mp4"].status == Status.DONE
    assert by_name["sound.mp4"].status == Status.FAILED and "has no video stream" in by_name["sound.mp4"].reason
    for name in ("corrupt.mp4", "truncated.mp4"):
        assert by_name[name].status == Status.FAILED and name in by_name[name].reason, by_name[name]
        assert "\n" not in by_name[name].reason
    written = sorted(p.name for p in out.rglob("*") if p.is_file() and not p.name.startswith(".p3m"))
    assert written == ["talk.mp4", "talk.webm"]  # nothing of the failed ones, no temporaries


def test_an_interrupted_video_publishes_nothing(still_clip, tmp_path):
    out = tmp_path / "out"
    result = matte_files(BrightnessEngine(fail_after=4), [still_clip], out,
                         MatteOptions(save=("alpha", "composite", "cutout", "frames")))
    assert result.failed == 1 and "engine stopped" in result.records[0].reason
    bookkeeping = (".p3m-matte.json", ".p3m.lock")  # the settings, and the lock a run holds on the folder
    assert [p for p in out.rglob("*") if p.is_file() and p.name not in bookkeeping] == []
    assert [p for p in out.rglob("*") if p.is_dir() and p.name.endswith(".partial")] == []


def test_matte_frames_streams_in_order_in_batches():
    frames = noisy_still(portrait(32, 32), 7, sigma=20)
    engine = BrightnessEngine()
    alphas = list(matte_frames(engine, iter(frames), batch_size=3, temporal="off"))
    assert len(alphas) == 7 and len(engine.shapes) == 7
    for frame, alpha in zip(frames, alphas):
        np.testing.assert_allclose(alpha, frame.mean(axis=2) / 255, atol=1e-6)


def test_edge_smoother_steadies_noise_in_the_band_and_leaves_motion_and_solid_regions():
    rng = np.random.default_rng(0)
    truth = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (16, 1))  # 0 .. 1: a wide band
    noisy = [np.clip(truth + rng.normal(0, 0.03, truth.shape).astype(np.float32), 0, 1) for _ in range(20)]
    smoother = EdgeSmoother()
    smoothed = [smoother(a) for a in noisy]

    def flicker(seq):
        return np.mean([np.abs(b - a).mean() for a, b in zip(seq, seq[1:])])
    assert flicker(smoothed) < 0.7 * flicker(noisy)
    moved = np.roll(truth, 20, axis=1)  # a large change: motion, taken as it is
    out = smoother(moved)
    big = np.abs(moved - smoothed[-1]) >= smoother.motion
    np.testing.assert_array_equal(out[big], moved[big])
    solid = EdgeSmoother()
    ones, zeros = np.ones((4, 4), np.float32), np.zeros((4, 4), np.float32)
    solid(ones)
    np.testing.assert_array_equal(solid(ones), ones)  # decided pixels untouched
    solid(zeros)


def _ground_truth_clip(frames_per_part: int = 8):
    """A synthetic portrait moved over a real background: frames, true alphas, and an
    engine's alphas imitated as the truth plus independent noise in the edge band."""
    from p3m.data.synthetic import make_portrait

    portrait_layer = make_portrait(np.random.default_rng(1), 320, 240)
    frames, truth = moving_portrait(portrait_layer.foreground, portrait_layer.alpha, data.coffee(), (240, 320),
                                    frames_per_part=frames_per_part)
    rng = np.random.default_rng(2)
    shimmer = [np.clip(t + rng.normal(0, 0.15, t.shape).astype(np.float32) * ((t > 0) & (t < 1)), 0, 1)
               for t in truth]
    return frames, truth, shimmer


def _part(seq, name, n=8):
    i = PARTS.index(name)
    return seq[i * n:(i + 1) * n]


def _flicker(pred, truth):
    return np.mean([np.abs((p1 - p0) - (g1 - g0)).mean() for p0, p1, g0, g1 in zip(pred, pred[1:], truth, truth[1:])])


def test_flow_consistency_steadies_still_edges_and_moving_edges_do_not_lag():
    frames, truth, shimmer = _ground_truth_clip()
    step = FlowSmoother()
    steady = [step(rgb, alpha) for rgb, alpha in zip(frames, shimmer)]
    still_off, still_on = (_flicker(_part(s, "still"), _part(truth, "still")) for s in (shimmer, steady))
    assert still_on < still_off / 3  # still edges stop shimmering
    dim_off, dim_on = (_flicker(_part(s, "light-change"), _part(truth, "light-change")) for s in (shimmer, steady))
    assert dim_on < dim_off / 2.5  # a change of light is not motion

    def mad(seq, name):
        return np.mean([np.abs(a - t).mean() for a, t in zip(_part(seq, name), _part(truth, name))])
    for moving in ("pan-zoom", "person-moves"):  # no lag: never further from the truth than each frame alone
        assert mad(steady, moving) <= 1.05 * mad(shimmer, moving)
    # A cut to another size starts afresh; decided pixels stay decided.
    np.testing.assert_array_equal(step(frames[0][:64, :96], shimmer[0][:64, :96]), shimmer[0][:64, :96])
    solid = FlowSmoother()
    ones = np.ones((64, 96), np.float32)
    solid(frames[0][:64, :96], ones)
    np.testing.assert_array_equal(solid(frames[1][:64, :96], ones), ones)


def test_matte_frames_takes_any_frame_source_with_the_files_temporal_step(tmp_path):
    frames, truth, _ = _ground_truth_clip(4)
    engine = BrightnessEngine()
    from_list = list(matte_frames(engine, frames))  # temporal="flow", the default, as for files
    from_generator = list(matte_frames(engine, (f for f in frames), batch_size=3))
    for a, b in zip(from_list, from_generator):
        np.testing.assert_array_equal(a, b)
    per_frame = list(matte_frames(engine, frames, temporal="off"))
    assert any(np.abs(a - b).max() > 0.01 for a, b in zip(from_list, per_frame))  # the step ran
    with pytest.raises(ValueError, match="flow, edges, off"):
        list(matte_frames(engine, frames, temporal="steady"))
    with pytest.raises(OptionError, match="temporal"):
        MatteOptions(temporal="steady")
    clip = tmp_path / "clip.mp4"
    write_clip(clip, frames)
    for mode in ("flow", "off"):
        assert matte_files(engine, [clip], tmp_path / mode, MatteOptions(save=("alpha",), temporal=mode)).ok
    _, on, _ = frames_of(tmp_path / "flow" / "alpha" / "clip.mp4")
    _, off, _ = frames_of(tmp_path / "off" / "alpha" / "clip.mp4")
    assert any(np.abs(a.astype(int) - b.astype(int)).mean() > 0.5 for a, b in zip(on, off))  # p3m matte uses it


def test_a_prores_4444_cutout_carries_the_alpha_video_as_the_webm_does(tmp_path):
    clip = tmp_path / "in" / "talk.mp4"
    clip.parent.mkdir()
    write_clip(clip, noisy_still(portrait(98, 130), 6), audio=True)  # 130 wide: not a multiple of 16
    engine = BrightnessEngine()
    for cutout in ("mov", "webm"):
        options = MatteOptions(save=("alpha", "cutout"), video_cutout=cutout, temporal="off")
        assert matte_files(engine, [clip], tmp_path / cutout, options).ok
    _, alpha_video, _ = frames_of(tmp_path / "mov" / "alpha" / "talk.mp4")
    mov = tmp_path / "mov" / "cutout" / "talk.mov"
    with av.open(str(mov)) as container:
        video = container.streams.video[0]
        assert video.codec_context.name == "prores" and video.codec_context.pix_fmt.startswith("yuva444p")
        assert [s.codec_context.name for s in container.streams.audio] == ["aac"]  # copied as it is
        prores = [f.to_ndarray(format="rgba") for f in container.decode(video)]  # FFmpeg's own decoder
    webm = decode_rgba_webm(tmp_path / "webm" / "cutout" / "talk.webm")  # libvpx's decoder
    assert len(prores) == len(webm) == len(alpha_video) == 6
    for name, decoded, tolerance in (("mov", prores, 1.0), ("webm", webm, 2.5)):
        for rgba, gray in zip(decoded, alpha_video):  # mean error of the alpha video's H.264 and this codec
            error = np.abs(rgba[..., 3].astype(float) - gray[..., 0].astype(float)).mean()
            assert error < tolerance + 1.5, (name, error)
    expected = [f.mean(axis=2) for f in frames_of(clip)[1]]
    for rgba, want in zip(prores, expected):  # ProRes's alpha is near lossless, in every pixel
        assert np.abs(rgba[..., 3].astype(float) - want).max() <= 1.5  # 8-bit rounding and ProRes
    with pytest.raises(OptionError, match="video_cutout 'mov' applies to cut-outs"):
        MatteOptions(save=("alpha",), video_cutout="mov")


def test_the_flow_step_takes_any_frame_it_may_be_given_and_hands_back_arrays_of_its_own():
    rng = np.random.default_rng(0)
    for h, w in ((1, 1), (8, 8), (12, 100), (24, 320), (40, 640), (64, 1920), (480, 8), (241, 321)):
        step = FlowSmoother()  # thin and tiny frames crashed OpenCV's DIS flow (a segfault) or gave NaN
        for _ in range(3):
            out = step(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), rng.random((h, w), dtype=np.float32))
            assert out.shape == (h, w) and np.isfinite(out).all(), (h, w)
    step, alpha = FlowSmoother(), rng.random((64, 96, 1), dtype=np.float32)
    for frame in (rng.integers(0, 256, (64, 96), dtype=np.uint8), rng.integers(0, 65535, (64, 96, 3), dtype=np.uint16),
                  rng.random((64, 96, 3), dtype=np.float32), rng.integers(0, 256, (64, 96, 4), dtype=np.uint8),
                  rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)):  # grey, 16-bit, float, RGBA, another size
        assert np.isfinite(step(frame, alpha)).all()
    still, half = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8), np.full((64, 96), 0.5, np.float32)
    step = FlowSmoother()
    broken = half.copy()
    broken[3, 3] = np.nan
    outs = [step(still, a) for a in (half, broken, half, half)]
    assert [int(np.isnan(o).sum()) for o in outs] == [0, 1, 0, 0]  # passed on for the caller, never spread
    mine = step(still, half)
    mine *= 255  # the caller's to change: the next frame does not see it
    assert step(still, half).max() <= 0.5 + 1e-6


def test_a_rerun_with_another_temporal_step_is_not_taken_for_done(still_clip, tmp_path):
    from p3m.errors import OutputError

    engine = BrightnessEngine()
    assert matte_files(engine, [still_clip], tmp_path / "out", MatteOptions(temporal="off")).ok
    with pytest.raises(OutputError, match="temporal 'off' -> 'flow'"):
        matte_files(engine, [still_clip], tmp_path / "out", MatteOptions())
    again = matte_files(engine, [still_clip], tmp_path / "out", MatteOptions(overwrite=True))
    assert again.done == 1


def test_without_pyav_a_video_says_which_extra_to_install(still_clip, tmp_path, published_checkpoint):
    code = ("import sys\nsys.modules['av'] = None\nfrom p3m.cli.main import main\n"
            f"sys.exit(main(['matte', {str(still_clip)!r}, '-o', {str(tmp_path / 'out')!r}, '--engine', "
            f"{str(published_checkpoint)!r}, '--max-size', '64']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert 'pip install "p3m[video]"' in done.stderr and "talk.mp4" in done.stderr


# -- anonymising video ------------------------------------------------------------------
def _face_clip(path: Path, count: int = 8, marked: int | None = None) -> list[np.ndarray]:
    """The astronaut at 256 x 256 (one face HOG finds), noisy; frame ``marked`` carries a
    red corner that the test detector below treats as "missed"."""
    frames = noisy_still(portrait(256, 256), count, sigma=2)
    if marked is not None:
        frames[marked][:16, :16] = (255, 0, 0)
    write_clip(path, frames, audio=True)
    return frames


def _marked(rgb: np.ndarray) -> bool:
    corner = rgb[:16, :16].astype(int)
    return corner[..., 0].mean() > 180 and corner[..., 1].mean() < 80


def test_a_video_is_anonymised_in_every_frame_with_its_audio(tmp_path):
    pytest.importorskip("dlib")
    from p3m.jobs.anonymize import AnonymizeOptions, anonymize_files
    from p3m.privacy.audit import boxes_overlap
    from p3m.privacy.faces import detect_faces

    clip = tmp_path / "in" / "face.mp4"
    clip.parent.mkdir()
    _face_clip(clip)
    _, frames, _ = frames_of(clip)  # as decoded: what the tool saw
    report = anonymize_files([clip.parent], tmp_path / "out", AnonymizeOptions())
    record = report.records[0]
    assert record.status == Status.DONE and record.faces >= len(frames), record.reason
    assert "8 frames" in record.reason and "0 uncovered" in record.reason
    out = tmp_path / "out" / "blurred_image" / "face.mp4"
    _, blurred, _ = frames_of(out)
    assert len(blurred) == len(frames)
    box = detect_faces(frames[0])[0].box
    for original, frame in zip(frames, blurred):
        assert not any(boxes_overlap(f.box, box) for f in detect_faces(frame))  # the face is found in no frame
        face = (slice(box[1], box[3]), slice(box[0], box[2]))
        inside = np.abs(frame[face].astype(int) - original[face]).mean()
        outside = np.abs(frame[200:].astype(int) - original[200:]).mean()  # re-encoding only
        assert inside > 5 and inside > 3 * outside
    with av.open(str(out)) as container:
        assert len(container.streams.audio) == 1
    assert report.totals()["anonymized"] == 1
    row = record.row()
    assert row["min_identity_distance"] >= 0.65 and row["sigma_scale"] >= 0.12 and row["identity_matches"] == 0


@pytest.mark.slow
def test_a_video_whose_face_is_cut_by_the_frame_is_held_back_saying_why(tmp_path):
    """Her face cut down the middle by the frame's edge in every frame: blurred up to her
    whole head, still within the margin at the box an attacker draws inside the frame
    (as the photo is, tests/test_face_detection.py), so the video is not written, and the
    reason names the cut."""
    pytest.importorskip("dlib")
    from p3m.jobs.anonymize import AnonymizeOptions, anonymize_files

    clip = tmp_path / "in" / "cut.mp4"
    clip.parent.mkdir()
    write_clip(clip, noisy_still(np.ascontiguousarray(data.astronaut()[:256, 230:486]), 2, sigma=2))
    report = anonymize_files([clip.parent], tmp_path / "out", AnonymizeOptions())
    record = report.records[0]
    assert record.status != Status.DONE and not (tmp_path / "out" / "blurred_image" / "cut.mp4").exists()
    assert "the closest face is cut by the frame" in record.reason, record.reason
    row = record.row()  # the blur the frames reached, and how close the face stayed
    assert row["sigma_scale"] == pytest.approx(0.4) and row["min_identity_distance"] < 0.65


def test_a_face_the_detector_misses_in_one_frame_is_carried_from_its_neighbours(tmp_path):
    pytest.importorskip("dlib")
    from p3m.privacy.faces import detect_faces
    from p3m.video.anonymize import anonymize_video

    clip = tmp_path / "face.mp4"
    frames = _face_clip(clip, marked=4)

    def missing_frame_4(rgb):
        return [] if _marked(rgb) else detect_faces(rgb)

    target = tmp_path / "out.mp4"
    outcome, audit = anonymize_video(clip, target, sigma_scale=0.12, forehead=0.3, find_faces=missing_frame_4)
    assert outcome.written and audit.frames == 8 and audit.carried >= 1 and not audit.uncovered
    _, blurred, _ = frames_of(target)
    box = detect_faces(frames[3])[0].box
    face = (slice(box[1], box[3]), slice(box[0], box[2]))
    assert np.abs(blurred[4][face].astype(int) - frames[4][face]).mean() > 5  # blurred though never detected
    assert detect_faces(blurred[4]) == []


def test_a_face_carried_into_a_frame_is_identity_audited_there():
    """A face carried from a neighbouring frame is blurred as a region and its identity
    audited in this frame (at its landmarks and the attacker's boxes), like a found face;
    blurred too weakly, it holds the frame back."""
    pytest.importorskip("dlib")
    from p3m.privacy.anonymize import anonymize
    from p3m.privacy.blur import face_region_of
    from p3m.privacy.faces import detect_faces

    frame = portrait(256, 256)
    (face,) = [f for f in detect_faces(frame) if f.confident]
    carried = face_region_of(face, frame.shape[:2], grow=4)
    result = anonymize(frame, None, faces=[], regions=[carried], find_faces=lambda rgb: [])
    assert result.status == "ok" and len(result.audit.distances) == 1 and result.audit.distances[0] >= 0.65
    faint = anonymize(frame, None, faces=[], regions=[carried], find_faces=lambda rgb: [], sigma_scale=0.001)
    assert faint.strengthened > 0 and faint.sigma_scale > 0.001  # the carried face's audit made it blur harder


def test_frames_without_a_face_or_a_person_are_written_as_they_are(tmp_path):
    """She leaves the picture: the frames after show only a wall. They are written as
    they are (not blacked out), and her face carried into the first two of them is blurred
    there but not identity-audited, since her face is no longer there (auditing the wall
    would hold the video back for nothing)."""
    pytest.importorskip("dlib")
    from p3m.video.anonymize import anonymize_video

    frames = noisy_still(portrait(256, 256), 4, sigma=2) + noisy_still(np.full((256, 256, 3), 150, np.uint8), 4,
                                                                        sigma=2)
    clip = tmp_path / "leaves.mp4"
    write_clip(clip, frames)
    outcome, audit = anonymize_video(clip, tmp_path / "out.mp4", allow_no_face=False)
    assert outcome.value == "ok" and audit.carried >= 2 and audit.frames_with_faces == 6 and not audit.uncovered, audit
    _, written, _ = frames_of(tmp_path / "out.mp4")
    _, decoded, _ = frames_of(clip)
    assert all(abs(w.mean() - d.mean()) < 2 for w, d in zip(written[6:], decoded[6:]))  # the wall, as it was


def test_a_video_fails_closed_when_a_face_cannot_be_covered_or_none_is_found(tmp_path):
    pytest.importorskip("dlib")
    from p3m.privacy.anonymize import Outcome
    from p3m.privacy.faces import detect_faces
    from p3m.video.anonymize import anonymize_video

    clip = tmp_path / "face.mp4"
    frames = _face_clip(clip, count=4)
    face = detect_faces(frames[0])
    target = tmp_path / "out.mp4"
    outcome, audit = anonymize_video(clip, target, sigma_scale=0.12, forehead=0.3, find_faces=lambda rgb: face)
    assert outcome is Outcome.IDENTIFIABLE and audit.uncovered == [0, 1, 2, 3] and not target.exists()
    outcome, audit = anonymize_video(clip, target, sigma_scale=0.12, forehead=0.3, find_faces=lambda rgb: [])
    assert outcome is Outcome.NO_FACE and audit.faces == 0 and not target.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["face.mp4"]  # no temporaries left


def test_full_range_input_stays_full_range_with_the_right_levels(tmp_path):
    half = np.zeros((48, 64, 3), np.uint8)
    half[:, :32] = 255
    write_clip(tmp_path / "phone.mp4", [half] * 3, pix_fmt="yuvj420p")  # full range, as phones record
    assert matte_files(BrightnessEngine(), [tmp_path / "phone.mp4"], tmp_path / "out",
                       MatteOptions(save=("alpha",), temporal="off")).ok
    _, frames, info = frames_of(tmp_path / "out" / "alpha" / "phone.mp4")
    assert info.color_range == 2
    assert frames[0][:, 4:28, 0].min() >= 250 and frames[0][:, 36:60, 0].max() <= 5  # not squeezed to 16-235


class OpaqueEngine(MattingEngine):
    """The whole frame is the person: a cut-out shows every pixel as it was, or blurred."""

    def predict(self, images):
        return [np.ones(image.shape[:2], np.float32) for image in images]


def test_a_private_video_cutout_carries_a_face_the_detector_misses(tmp_path, monkeypatch):
    pytest.importorskip("dlib")
    import p3m.video.anonymize as video_anonymize
    from p3m.privacy.faces import detect_faces

    clip = tmp_path / "in" / "face.mp4"
    clip.parent.mkdir()
    frames = _face_clip(clip, marked=4)
    finder = video_anonymize.upright_finder

    def missing_frame_4(options, blurred=False):
        find = finder(options, blurred)
        return lambda rgb: [] if _marked(rgb) else find(rgb)

    monkeypatch.setattr(video_anonymize, "upright_finder", missing_frame_4)
    result = matte_files(OpaqueEngine(), [clip.parent], tmp_path / "out",
                         MatteOptions(save=("cutout",), anonymize=True, temporal="off"))
    (record,) = result.records
    assert record.status == Status.DONE, record.reason
    assert record.privacy["status"] == "ok" and "8 frames" in record.privacy["video"]
    assert "0 uncovered" in record.privacy["video"] and record.privacy["audit"]["identity_matches"] == 0
    cutouts = decode_rgba_webm(tmp_path / "out" / "cutout" / "face.webm")
    box = detect_faces(frames[3])[0].box
    face = (slice(box[1], box[3]), slice(box[0], box[2]))
    assert np.abs(cutouts[4][face][..., :3].astype(int) - frames[4][face]).mean() > 5  # carried into frame 4
    from p3m.privacy.audit import boxes_overlap

    assert not any(boxes_overlap(f.box, box) for f in detect_faces(np.ascontiguousarray(cutouts[4][..., :3])))


def test_videos_have_the_pixel_limit_of_images(tmp_path):
    from p3m.jobs.anonymize import AnonymizeOptions, anonymize_files

    (tmp_path / "in").mkdir()
    write_clip(tmp_path / "in" / "big.mp4", [portrait(96, 128)] * 2)
    result = matte_files(BrightnessEngine(), [tmp_path / "in"], tmp_path / "out", MatteOptions(max_pixels=5000))
    assert result.failed == 1 and "96 = 0.0123 megapixels exceed the limit of 0.005" in result.failures[0].reason
    assert not list((tmp_path / "out").rglob("*.mp4"))
    pytest.importorskip("dlib")
    report = anonymize_files([tmp_path / "in"], tmp_path / "anon", AnonymizeOptions(max_pixels=5000))
    assert "exceed the limit" in report.records[0].reason


def test_a_video_cut_short_is_a_failure_not_done(tmp_path):
    """A 40-frame MKV cut at 80% decodes without an error, only fewer frames: it must not count as done."""
    whole = tmp_path / "whole.mkv"
    write_clip(whole, noisy_still(portrait(64, 96), 40, sigma=8))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "cut.mkv").write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.8)])
    result = matte_files(BrightnessEngine(), [tmp_path / "in"], tmp_path / "out", MatteOptions(save=("alpha",)))
    assert result.failed == 1 and "truncated or damaged" in result.records[0].reason
    assert not list((tmp_path / "out").rglob("*.mp4"))
    assert matte_files(BrightnessEngine(), [whole], tmp_path / "whole_out", MatteOptions(save=("alpha",))).done == 1


@pytest.mark.slow
def test_a_person_whose_face_is_lost_holds_the_video_back_or_gets_the_head_blurred(tmp_path, face_models,
                                                                                   monkeypatch):
    """Frames 4-7 show her head from behind (the face painted over with hair): a person is
    seen there with no face found or carried. The video is held back, or with
    --allow-no-face written with her head blurred in those frames. (Faces are searched
    for confident detections only: HOG's weak hit on her suit would count as a face in
    the frame, and her head would be blurred beside it, as in a photo.)"""
    import cv2

    pytest.importorskip("dlib")
    import p3m.video.anonymize as video_anonymize
    from p3m.privacy.faces import detect_faces
    from p3m.video.anonymize import anonymize_video

    finder = video_anonymize.upright_finder
    monkeypatch.setattr(video_anonymize, "upright_finder",
                        lambda options, blurred=False: lambda rgb: [f for f in finder(options, blurred)(rgb)
                                                                    if f.confident])

    frames = noisy_still(portrait(256, 256), 8, sigma=2)
    left, top, right, bottom = detect_faces(frames[0])[0].box
    hair = np.zeros(frames[0].shape[:2], np.uint8)
    cv2.ellipse(hair, ((left + right) // 2, (top + bottom) // 2 - 4), ((right - left) * 3 // 4, (bottom - top) * 3 // 4),
                0, 0, 360, 1, -1)
    for frame in frames[4:]:
        frame[hair > 0] = (92, 64, 36)
    clip = tmp_path / "turns.mp4"
    write_clip(clip, frames)
    outcome, audit = anonymize_video(clip, tmp_path / "held.mp4", carry=0)
    assert outcome.value == "person-without-face" and audit.faceless == [4, 5, 6, 7]
    assert not (tmp_path / "held.mp4").exists()
    outcome, audit = anonymize_video(clip, tmp_path / "written.mp4", carry=0, allow_no_face=True)
    assert outcome.value == "ok" and audit.heads == 4 and not audit.faceless
    _, written, _ = frames_of(tmp_path / "written.mp4")
    _, decoded, _ = frames_of(clip)
    centre = (slice((top + bottom) // 2 - 8, (top + bottom) // 2 + 8), slice((left + right) // 2 - 8, (left + right) // 2 + 8))
    assert all(np.abs(w[centre].astype(int) - d[centre]).mean() > 3 for w, d in zip(written[4:], decoded[4:]))
    outcome, audit = anonymize_video(clip, tmp_path / "strict.mp4", carry=0, allow_no_face=True, hold_unaudited=True)
    assert outcome.value == "unaudited" and audit.unaudited == [4, 5, 6, 7]  # her blurred head: not auditable
    assert not (tmp_path / "strict.mp4").exists()
    # A private cut-out of it goes by the same rule: frames 4 and 5 get her face carried from
    # frames 2 and 3; frame 6 has neither, so nothing of the video is written.
    (tmp_path / "in").mkdir()
    clip.rename(tmp_path / "in" / "turns.mp4")
    (record,) = matte_files(OpaqueEngine(), [tmp_path / "in"], tmp_path / "private",
                            MatteOptions(save=("cutout",), anonymize=True, temporal="off")).records
    assert record.status == Status.HELD_BACK and "frame 6: 1 person(s) seen but no face found" in record.reason
    assert not list((tmp_path / "private").rglob("*.webm"))


class EdgeThroughTheFaceEngine(MattingEngine):
    """Opaque on the left, clear on the right, an 8-px ramp between them down column
    ``centre`` (along the side of the face): a matte edge the face blur must keep."""

    def __init__(self, centre: int) -> None:
        self.centre = centre

    def predict(self, images):
        out = []
        for image in images:
            ramp = np.clip((self.centre + 4 - np.arange(image.shape[1])) / 8, 0, 1).astype(np.float32)
            out.append(np.tile(ramp, (image.shape[0], 1)))
        return out


def test_an_anonymised_video_keeps_the_edges_of_its_alpha_video(tmp_path):
    """p3m anonymize --alpha with the alpha video p3m matte wrote: the face is blurred, and
    no pixel strictly inside the matte's edge changes (counted before encoding). The alpha
    video's flat 0 and 255 come back within ALPHA_VIDEO_SNAP, so codec noise is no edge;
    an alpha video of another size, or one that ends early, is one clear error."""
    pytest.importorskip("dlib")
    from p3m.jobs.anonymize import AnonymizeOptions, anonymize_files
    from p3m.privacy.faces import detect_faces
    from p3m.video.anonymize import ALPHA_VIDEO_SNAP

    clip = tmp_path / "in" / "face.mp4"
    clip.parent.mkdir()
    frames = _face_clip(clip, count=6)
    left, top, right, bottom = detect_faces(frames[0])[0].box
    engine = EdgeThroughTheFaceEngine(right)
    assert matte_files(engine, [clip.parent], tmp_path / "mattes", MatteOptions(save=("alpha",), temporal="off")).ok
    truth = np.round(engine.predict([frames[0]])[0] * 255)
    _, decoded, _ = frames_of(tmp_path / "mattes" / "alpha" / "face.mp4")
    flat = (truth == 0) | (truth == 255)
    assert all(np.abs(d[..., 0].astype(int) - truth)[flat].max() <= ALPHA_VIDEO_SNAP for d in decoded)

    report = anonymize_files([clip.parent], tmp_path / "out", AnonymizeOptions(alpha_dir=tmp_path / "mattes"))
    (record,) = report.records
    assert record.status == Status.DONE, record.reason
    assert record.changed_transition_pixels == 0 and report.totals()["changed_transition_pixels"] == 0
    _, blurred, _ = frames_of(tmp_path / "out" / "blurred_image" / "face.mp4")
    face, band, rows = slice(left, right - 10), slice(right - 2, right + 2), slice(top, bottom)  # band: in the ramp
    for original, frame in zip(frames, blurred):
        blurred_by = np.abs(frame[rows, face].astype(int) - original[rows, face]).mean()
        assert blurred_by > 8 and np.abs(frame[rows, band].astype(int) - original[rows, band]).mean() < blurred_by / 3

    long = tmp_path / "long"
    (long / "alpha").mkdir(parents=True)
    write_clip(long / "alpha" / "face.mp4", [np.full((256, 256, 3), 255, np.uint8)] * 9)
    (record,) = anonymize_files([clip.parent], tmp_path / "out1", AnonymizeOptions(alpha_dir=long)).records
    assert record.status == Status.FAILED and "the alpha video has more frames than the video" in record.reason
    short = tmp_path / "short"
    (short / "alpha").mkdir(parents=True)
    write_clip(short / "alpha" / "face.mp4", [np.full((256, 256, 3), 255, np.uint8)] * 3)
    (record,) = anonymize_files([clip.parent], tmp_path / "out2", AnonymizeOptions(alpha_dir=short)).records
    assert record.status == Status.FAILED and "the alpha video ends at frame 3" in record.reason
    small = tmp_path / "small"
    (small / "alpha").mkdir(parents=True)
    write_clip(small / "alpha" / "face.mp4", [np.full((128, 128, 3), 255, np.uint8)] * 6)
    (record,) = anonymize_files([clip.parent], tmp_path / "out3", AnonymizeOptions(alpha_dir=small)).records
    assert record.status == Status.FAILED and "is 128x128, the video is 256x256" in record.reason
    assert not list((tmp_path / "out2").rglob("*.mp4")) and not list((tmp_path / "out3").rglob("*.mp4"))
