"""Video: streamed matting of video files with PyAV (the ``video`` extra), and live frame sources."""

from p3m.utils.lazy import lazy_attributes

_EXPORTS = {
    "VideoReader": "p3m.video.reader",
    "VideoInfo": "p3m.video.reader",
    "VideoWriter": "p3m.video.writer",
    "EdgeSmoother": "p3m.video.stabilise",
    "FlowSmoother": "p3m.video.temporal",
    "matte_frames": "p3m.video.matte",
    "live": "p3m.video.live",
    "live_alphas": "p3m.video.live",
    "frames_from": "p3m.video.live",
    "LiveFrame": "p3m.video.live",
    "matte_video": "p3m.video.matte",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes(__name__, _EXPORTS)
