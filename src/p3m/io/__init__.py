"""Reading and writing images: robust decoding, atomic PNG/JPEG writes."""

from p3m.io.images import DEFAULT_MAX_PIXELS, ImageError, load_image, read_image_file, read_matte
from p3m.io.writers import write_image

__all__ = ["DEFAULT_MAX_PIXELS", "ImageError", "load_image", "read_image_file", "read_matte", "write_image"]
