"""Writing matting results as video files, atomically, with the input's timing and audio.

One :class:`VideoWriter` per output file. Frames keep the input's presentation times
(in its time base), so a variable frame rate stays as it was; the display matrix of a
rotated input is written again, and the colour range is kept. Audio is copied from the
input when the container takes its codec, else re-encoded (AAC in MP4, Opus in WebM,
16-bit PCM in MOV).
The file is written under a temporary name and renamed when complete: an interrupted
run never leaves a video that looks finished.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from p3m.errors import VideoError
from p3m.utils.files import atomic_path
from p3m.video.reader import VideoInfo, import_av, stored


@dataclass(frozen=True)
class VideoFormat:
    """How one kind of output is encoded."""

    container: str
    codec: str
    pix_fmt: str  # for even frame sizes; odd sizes take ODD_SIZE_PIX_FMT where 4:2:0 cannot
    channels: str  # the ndarray layout handed to PyAV: gray, rgb24 or rgba
    audio_codec: str | None  # None: no audio track
    options: tuple[tuple[str, str], ...] = ()
    colorspace: int | None = None  # FFmpeg's AVColorSpace to tag the stream with (None: untagged)


#: The output kinds of a video. Alpha and composite are H.264 MP4 (widely playable);
#: the cut-out is VP9 with an alpha channel in WebM, the format browsers read
#: transparency from, or (``video_cutout="mov"``) :data:`PRORES_CUTOUT`.
FORMATS = {
    "alpha": VideoFormat("mp4", "libx264", "yuv420p", "gray", None, (("crf", "16"), ("preset", "medium"))),
    "composite": VideoFormat("mp4", "libx264", "yuv420p", "rgb24", "aac", (("crf", "18"), ("preset", "medium"))),
    "cutout": VideoFormat("webm", "libvpx-vp9", "yuva420p", "rgba", "libopus",
                          (("crf", "24"), ("b", "0"), ("row-mt", "1"), ("deadline", "good"), ("cpu-used", "4"))),
}
#: The editors' transparent video: ProRes 4444 (10-bit 4:4:4 colour, 16-bit alpha) in a
#: QuickTime MOV, with the audio as 16-bit PCM; FFmpeg's own decoder reads its alpha.
#: One encoder thread: prores_ks's slice threads share scratch buffers and overwrote
#: each other's 8-pixel runs (alpha off by up to 128) at widths not a multiple of 16.
#: Tagged BT.601 (AVCOL_SPC_SMPTE170M), the matrix swscale converts RGB with, so that
#: editors convert it back with the same one.
PRORES_CUTOUT = VideoFormat("mov", "prores_ks", "yuva444p10le", "rgba", "pcm_s16le",
                            (("profile", "4444"), ("vendor", "apl0"), ("alpha_bits", "16"), ("threads", "1")),
                            colorspace=6)
SUFFIXES = {"mp4": ".mp4", "webm": ".webm", "mov": ".mov"}
#: H.264 in 4:2:0 needs even sizes; an odd-sized video keeps its size in 4:4:4.
ODD_SIZE_PIX_FMT = "yuv444p"
#: FFmpeg's AVCOL_RANGE_JPEG: 0-255 luma (phones often record it); 1 is limited, 16-235.
FULL_RANGE = 2
#: Audio codecs each container takes as they are.
COPYABLE_AUDIO = {"mp4": {"aac", "mp3", "mp3float", "ac3", "eac3", "alac", "opus"}, "webm": {"opus", "vorbis"},
                  "mov": {"aac", "alac", "mp3", "mp3float", "pcm_s16le", "pcm_s24le"}}  # mp3float: FFmpeg's MP3 decoder


def video_format(kind: str, video_cutout: str = "webm") -> VideoFormat:
    """How ``kind`` is encoded; ``video_cutout`` (webm or mov, :attr:`MatteOptions.video_cutout`) picks the cut-out's."""
    return PRORES_CUTOUT if kind == "cutout" and video_cutout == "mov" else FORMATS[kind]


def output_suffix(kind: str, video_cutout: str = "webm") -> str:
    return SUFFIXES[video_format(kind, video_cutout).container]


class VideoWriter:
    """Encodes the frames of one output kind; ``close()`` adds the audio and publishes the file."""

    def __init__(self, path: str | os.PathLike, kind: str, info: VideoInfo, *, audio: bool = True,
                 video_cutout: str = "webm") -> None:
        self.av = import_av()
        self.path, self.info, self.format = Path(path), info, video_format(kind, video_cutout)
        self._atomic = atomic_path(self.path)
        self._temporary = self._atomic.__enter__()
        self._next_pts = 0
        self.container = self._audio_in = self._audio_out = None
        try:
            self.container = self.av.open(os.fspath(self._temporary), "w", format=self.format.container)
            self.stream = self._video_stream()
            if audio and self.format.audio_codec and info.has_audio:
                self._audio_stream()  # every stream exists before the first packet
        except Exception as exc:
            self._abandon()
            raise VideoError(f"{self.path}: cannot start writing ({exc})") from None

    def _video_stream(self):
        f, info = self.format, self.info
        stream = self.container.add_stream(f.codec, rate=info.rate, options=dict(f.options))
        # Encoded as stored: a rotated input's frames go back to its orientation, with its display matrix.
        width, height = (info.height, info.width) if info.rotation in (90, 270) else (info.width, info.height)
        stream.width, stream.height = width, height
        odd = width % 2 or height % 2
        stream.pix_fmt = ODD_SIZE_PIX_FMT if odd and f.pix_fmt == "yuv420p" else f.pix_fmt
        stream.time_base = info.time_base
        stream.codec_context.time_base = info.time_base
        tagged = bool(info.color_range) and f.channels != "rgba"  # a transparent video keeps its default range
        if tagged:
            stream.codec_context.color_range = info.color_range
        self._full_range = tagged and info.color_range == FULL_RANGE
        if f.colorspace is not None:
            stream.codec_context.colorspace = f.colorspace
        if info.rotation:
            stream.set_display_rotation(info.rotation)
        return stream

    def write(self, array: np.ndarray, pts: int | None) -> None:
        """One upright frame (H x W gray, H x W x 3 RGB or H x W x 4 RGBA uint8) at ``pts``."""
        frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(stored(array, self.info.rotation)),
                                                format=self.format.channels)
        if self._full_range:  # convert to full-range YUV, as the stream is tagged (the default is limited)
            frame = frame.reformat(format=self.stream.pix_fmt, dst_color_range=FULL_RANGE)
        if pts is None or pts < self._next_pts:  # no or repeated time stamps: keep them increasing
            pts = self._next_pts
        frame.pts, frame.time_base = pts, self.info.time_base
        self._next_pts = pts + 1
        self._mux(self.stream.encode(frame))

    def _mux(self, packets) -> None:
        for packet in packets:
            self.container.mux(packet)

    def close(self) -> Path:
        """Flush, add the input's audio, and move the finished file into place."""
        try:
            self._mux(self.stream.encode())
            if self._audio_out is not None:
                self._copy_audio()
            self.container.close()
        except Exception as exc:
            self._abandon()
            raise VideoError(f"{self.path}: cannot finish writing ({exc})") from None
        finally:
            if self._audio_in is not None:
                self._audio_in.close()
        self._atomic.__exit__(None, None, None)
        return self.path

    def abandon(self) -> None:
        """Stop without publishing anything (after a failure elsewhere)."""
        self._abandon()

    def _abandon(self) -> None:
        for container in (self.container, self._audio_in):
            if container is not None:
                with contextlib.suppress(Exception):
                    container.close()
        with contextlib.suppress(Exception):
            self._atomic.__exit__(VideoError, VideoError("abandoned"), None)

    def _audio_stream(self) -> None:
        """The output audio stream: a copy of the input's when the container takes its codec."""
        self._audio_in = self.av.open(os.fspath(self.info.path), "r")
        audio = self._audio_in.streams.audio[0]
        self._copy = audio.codec_context.name in COPYABLE_AUDIO[self.format.container]
        if self._copy:
            self._audio_out = self.container.add_stream_from_template(audio)
        else:
            rate = audio.codec_context.sample_rate or 48000
            if self.format.audio_codec == "libopus":
                rate = 48000  # Opus encodes at 48 kHz
            self._audio_out = self.container.add_stream(self.format.audio_codec, rate=rate)

    def _copy_audio(self) -> None:
        audio = self._audio_in.streams.audio[0]
        if self._copy:
            for packet in self._audio_in.demux(audio):
                if packet.dts is not None:
                    packet.stream = self._audio_out
                    self.container.mux(packet)
            return
        for frame in self._audio_in.decode(audio):
            frame.pts = None
            self._mux(self._audio_out.encode(frame))
        self._mux(self._audio_out.encode())
