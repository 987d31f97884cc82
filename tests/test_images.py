"""Every kind of input photo is converted correctly or refused with a clear message."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from p3m.errors import P3MError
from p3m.io import ImageError, load_image
from p3m.io.images import matte_to_float, read_matte
from p3m.io.writers import write_matte


def _rgb(h=20, w=30):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = _rgb()[..., 0]
    Image.fromarray(gray).save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png")
    assert out.shape == (20, 30, 3) and all(np.array_equal(out[..., c], gray) for c in range(3))


def test_rgba_is_composited_over_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # opaque red-ish top, transparent bottom
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    assert out[0, 0].tolist() == [200, 0, 0] and out[3, 3].tolist() == [255, 255, 255]


def test_palette_and_cmyk_images(tmp_path):
    img = Image.fromarray(_rgb())
    img.convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(tmp_path / "p.png")
    pal = load_image(tmp_path / "p.png")
    assert pal.shape == (20, 30, 3)
    np.testing.assert_array_equal(pal, np.asarray(Image.open(tmp_path / "p.png").convert("RGB")))
    Image.fromarray(np.full((8, 8, 3), (255, 0, 0), np.uint8)).convert("CMYK").save(tmp_path / "c.jpg")
    cmyk = load_image(tmp_path / "c.jpg")
    assert cmyk.shape == (8, 8, 3) and cmyk[..., 0].mean() > 200 and cmyk[..., 1:].mean() < 60


def test_sixteen_bit_images_keep_their_range(tmp_path):
    import cv2

    ramp = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), ramp)
    cv2.imwrite(str(tmp_path / "c16.png"), np.stack([ramp] * 3, axis=2))
    for name in ("g16.png", "c16.png"):
        out = load_image(tmp_path / name)
        np.testing.assert_array_equal(out[..., 0], (ramp >> 8).astype(np.uint8))
    np.testing.assert_array_equal(load_image(ramp)[..., 1], (ramp >> 8).astype(np.uint8))


def test_exif_orientation_is_honoured(tmp_path):
    img = Image.fromarray(_rgb(20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "r.jpg", exif=exif)
    assert load_image(tmp_path / "r.jpg").shape == (30, 20, 3)


@pytest.mark.parametrize(
    "name, content, problem",
    [
        ("text.jpg", b"not an image at all", "not an image file"),
        ("empty.png", b"", "not an image file"),
    ],
)
def test_non_images_are_refused_with_the_file_name(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ImageError, match=problem) as err:
        load_image(path)
    assert str(path) in str(err.value)


def test_truncated_jpeg_is_refused(tmp_path):
    Image.fromarray(_rgb(200, 200)).save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(tmp_path / "cut.jpg")


def test_zero_sized_image_is_refused(tmp_path):
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 10, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")
    (tmp_path / "zero.png").write_bytes(png)
    with pytest.raises(ImageError) as err:
        load_image(tmp_path / "zero.png")
    assert "zero.png" in str(err.value)


def test_pixel_limit_refuses_before_decoding(tmp_path):
    Image.fromarray(_rgb(100, 100)).save(tmp_path / "big.png")
    with pytest.raises(ImageError, match=r"0.01 megapixels exceeds the limit of 0.005 \(raise it with --max-pixels\)"):
        load_image(tmp_path / "big.png", max_pixels=5000)
    assert load_image(tmp_path / "big.png", max_pixels=None).shape == (100, 100, 3)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="is a directory"):
        load_image(tmp_path)


def test_mattes_of_every_depth_read_to_the_same_floats(tmp_path):
    alpha8 = np.array([[0, 51, 255]], np.uint8)
    alpha16 = alpha8.astype(np.uint16) * 257
    Image.fromarray(alpha8).save(tmp_path / "a8.png")
    Image.fromarray(alpha16).save(tmp_path / "a16.png")
    Image.fromarray(np.repeat(alpha8[..., None], 3, axis=2)).save(tmp_path / "rgb.png")
    expected = np.array([[0.0, 0.2, 1.0]])
    for name in ("a8.png", "a16.png", "rgb.png"):
        np.testing.assert_allclose(read_matte(tmp_path / name), expected, atol=1e-12)
    np.testing.assert_allclose(matte_to_float(alpha16), expected, atol=1e-12)
    np.testing.assert_allclose(matte_to_float(np.float32(expected)), expected, atol=1e-7)


@pytest.mark.parametrize("array,problem", [(np.zeros((2, 2), np.int64), "unsupported matte type int64"),
                                           (np.zeros((2, 2, 2, 2)), "must be a 2-D matte")])
def test_unusable_matte_arrays_are_named_errors(array, problem):
    with pytest.raises(ImageError, match=f"hand-drawn.png: {problem}"):
        matte_to_float(array, name="hand-drawn.png")


@pytest.mark.parametrize("bits", [8, 16])
def test_written_mattes_read_back_to_their_depth(tmp_path, bits):
    alpha = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    back = read_matte(write_matte(tmp_path / "a.png", alpha, bits=bits))
    np.testing.assert_allclose(back, alpha, atol=0.5 / (2**bits - 1) + 1e-7)
    with pytest.raises(P3MError, match="matte bits must be one of 8, 16"):
        write_matte(tmp_path / "b.png", alpha, bits=12)
