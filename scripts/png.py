"""Read a PNG's pixels with the standard library alone (zlib): enough to tell a
rendered page from a blank one."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Colour type -> channels per pixel (8-bit samples only: what Chromium writes).
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


@dataclass(frozen=True)
class Image:
    width: int
    height: int
    channels: int
    pixels: bytes  # rows top to bottom, unfiltered, `channels` bytes a pixel

    def colours(self) -> set[bytes]:
        """Every distinct pixel value."""
        step = self.channels
        return {self.pixels[i : i + step] for i in range(0, len(self.pixels), step)}

    def share_not_white(self) -> float:
        """The share of pixels whose colour channels are not all (near) white."""
        step = self.channels
        colour = min(step, 3)
        total = self.width * self.height
        dark = sum(
            1 for i in range(0, len(self.pixels), step) if min(self.pixels[i : i + colour]) < 240
        )
        return dark / total if total else 0.0


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def read_png(path: Path) -> Image:
    """Decode an 8-bit, non-interlaced PNG (greyscale, RGB, with or without alpha)."""
    data = path.read_bytes()
    if not data.startswith(SIGNATURE):
        raise ValueError(f"{path} is not a PNG")
    pos, idat = len(SIGNATURE), []
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _c, _f, interlace = struct.unpack(">IIBBBBB", body)
            if depth != 8 or colour not in _CHANNELS or interlace:
                raise ValueError(f"{path}: only 8-bit non-interlaced PNGs are read here")
            channels = _CHANNELS[colour]
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    out = bytearray()
    previous = bytearray(stride)
    for row in range(height):
        start = row * (stride + 1)
        method, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if method == 1:
                line[i] = (line[i] + left) & 0xFF
            elif method == 2:
                line[i] = (line[i] + up) & 0xFF
            elif method == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif method == 4:
                line[i] = (line[i] + _paeth(left, up, corner)) & 0xFF
        out += line
        previous = line
    return Image(width, height, channels, bytes(out))
