"""Camera messages <-> numpy, without cv_bridge: ``sensor_msgs/Image``,
``sensor_msgs/CompressedImage`` (image_transport ``compressed`` and ``compressedDepth``),
depth images.

Choice: this module always uses its own converter, also where ``cv_bridge`` is installed.
For the 8-bit colour / mono encodings a camera publishes, cv_bridge adds nothing the
few numpy lines below do not do (it also goes through a copy and an OpenCV colour
conversion), and using one converter everywhere keeps behaviour (error messages, the
handling of ``step`` padding) identical between a user's ROS 2 install and the pip-wheel
environment in which the tests run. Every function is duck-typed on the message fields,
so the same code decodes rclpy messages and the messages ``rosbags`` deserializes from a
bag.

Supported ``Image`` encodings for colour (``sensor_msgs/image_encodings``):

* ``rgb8``, ``bgr8``, ``8UC3`` (OpenCV order, i.e. BGR, as cv_bridge treats it)
* ``rgba8``, ``bgra8``, ``8UC4`` (BGRA) -- alpha is dropped
* ``mono8``, ``8UC1`` -- grey replicated to three channels
* ``mono16``, ``16UC1`` -- grey, scaled to 8 bits (``>> 8``), byte order from ``is_bigendian``

Depth (``depth_to_metres``): ``16UC1`` / ``mono16`` in millimetres (the RealSense, Azure
Kinect, OAK convention) and ``32FC1`` in metres (REP 118), both to float32 metres.

``CompressedImage`` colour (``compressed_to_rgb``): the payload is a JPEG or PNG file (as
compressed_image_transport writes it: ``format = "<encoding>; jpeg compressed bgr8"``, or the
bare ``"jpeg"`` / ``"png"`` of older publishers), decoded by OpenCV.
``compressedDepth`` (``compressed_depth_to_metres``): compressed_depth_image_transport's
layout -- a 12-byte little-endian header (int32 compression format, float32 quantization
parameters ``a``, ``b``) followed by a 16-bit PNG: ``16UC1`` holds millimetres as they were;
``32FC1`` holds the quantized inverse depth ``q = a / z + b`` (``q = 0``: no measurement), so
``z = a / (q - b)``. The RVL codec of that plugin is not supported (a clear error).

Every decoding failure raises :class:`ImageDecodeError` (a ``ValueError``) whose ``reason``
is a short key for counting skipped frames.
"""
from __future__ import annotations

import struct

import numpy as np

#: encoding -> (channels, bytes per channel, channel order of the result before conversion)
_ENCODINGS = {
    "rgb8": (3, 1, "rgb"),
    "bgr8": (3, 1, "bgr"),
    "8UC3": (3, 1, "bgr"),
    "rgba8": (4, 1, "rgba"),
    "bgra8": (4, 1, "bgra"),
    "8UC4": (4, 1, "bgra"),
    "mono8": (1, 1, "mono"),
    "8UC1": (1, 1, "mono"),
    "mono16": (1, 2, "mono"),
    "16UC1": (1, 2, "mono"),
}

#: encodings accepted by :func:`image_to_rgb`.
SUPPORTED_ENCODINGS = tuple(_ENCODINGS)
#: depth encodings accepted by :func:`depth_to_metres` -> metres per unit.
DEPTH_ENCODINGS = {"16UC1": 1e-3, "mono16": 1e-3, "32FC1": 1.0}
#: compressed_depth_image_transport's header: int32 format, float32 depthParam[2].
COMPRESSED_DEPTH_HEADER = struct.Struct("<iff")
#: compressed_depth_image_transport's default quantization (its depth_max, depth_quantization).
COMPRESSED_DEPTH_MAX_M = 10.0
COMPRESSED_DEPTH_QUANTIZATION = 100.0


class ImageDecodeError(ValueError):
    """A camera message that cannot be decoded.

    Attributes:
        reason: short key for counting, one of ``unsupported_encoding``,
            ``unsupported_format``, ``empty_image``, ``bad_layout`` (step / data length),
            ``corrupt_compressed``.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def _pixel_rows(msg, channels: int, bpc: int) -> np.ndarray:
    """(H, W * channels * bpc) uint8 view of the pixels of an ``Image`` (row padding cut)."""
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ImageDecodeError("empty_image", f"empty image: {w}x{h} ({msg.encoding})")
    row_bytes = w * channels * bpc
    if step < row_bytes:
        raise ImageDecodeError("bad_layout", f"image step {step} B is smaller than one row "
                               f"({w} px x {channels * bpc} B = {row_bytes} B)")
    buf = np.frombuffer(memoryview(msg.data).cast("B"), dtype=np.uint8)
    if buf.size < step * h:
        raise ImageDecodeError("bad_layout", f"image data is {buf.size} B, expected at least "
                               f"step*height = {step}*{h} = {step * h} B")
    return buf[: step * h].reshape(h, step)[:, :row_bytes]


def _u16(rows: np.ndarray, msg) -> np.ndarray:
    """(H, W) uint16 from 16-bit single-channel rows, byte order from ``is_bigendian``."""
    dt = np.dtype(">u2") if msg.is_bigendian else np.dtype("<u2")
    return np.ascontiguousarray(rows).view(dt).reshape(int(msg.height), int(msg.width)).astype(np.uint16)


def image_to_rgb(msg) -> np.ndarray:
    """Convert a ``sensor_msgs/Image`` to an RGB array.

    Args:
        msg: ``sensor_msgs.msg.Image`` (or any object with ``height``, ``width``,
            ``encoding``, ``is_bigendian``, ``step``, ``data``). Rows may be padded:
            ``step`` [bytes] >= ``width * channels * bytes_per_channel``.

    Returns:
        (H, W, 3) uint8 C-contiguous array, RGB order. Always a copy: it does not alias
        ``msg.data``.

    Raises:
        ImageDecodeError: unsupported encoding; zero width or height; ``step`` smaller than
            one row; ``data`` shorter than ``step * height``.
    """
    enc = msg.encoding
    if enc not in _ENCODINGS:
        raise ImageDecodeError("unsupported_encoding", f"unsupported image encoding '{enc}' "
                               f"(supported: {', '.join(SUPPORTED_ENCODINGS)})")
    channels, bpc, order = _ENCODINGS[enc]
    rows = _pixel_rows(msg, channels, bpc)
    h, w = int(msg.height), int(msg.width)
    if bpc == 2:
        grey = (_u16(rows, msg) >> 8).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    px = rows.reshape(h, w, channels)
    if order == "rgb":
        return px.copy()
    if order == "bgr":
        return np.ascontiguousarray(px[:, :, ::-1])
    if order == "rgba":
        return np.ascontiguousarray(px[:, :, :3])
    if order == "bgra":
        return np.ascontiguousarray(px[:, :, 2::-1])
    # mono
    return np.repeat(px, 3, axis=2)


def rgb_to_image(rgb: np.ndarray, header=None, encoding: str = "rgb8"):
    """Build a ``sensor_msgs/Image`` from an RGB array (for ``hands/overlay``).

    Args:
        rgb: (H, W, 3) uint8, RGB order.
        header: ``std_msgs/Header`` to copy (stamp and frame of the source image), or None.
        encoding: ``"rgb8"`` (default, no copy besides ``tobytes``) or ``"bgr8"``.

    Returns:
        ``sensor_msgs.msg.Image`` with ``step = 3 * W`` (no padding), ``is_bigendian = 0``.

    Raises:
        ValueError: wrong shape / dtype, empty image or another encoding.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 array, got {rgb.shape} {rgb.dtype}")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"empty image: {rgb.shape[1]}x{rgb.shape[0]}")
    if encoding == "rgb8":
        px = np.ascontiguousarray(rgb)
    elif encoding == "bgr8":
        px = np.ascontiguousarray(rgb[:, :, ::-1])
    else:
        raise ValueError(f"rgb_to_image: unsupported output encoding '{encoding}' (supported: rgb8, bgr8)")
    return _image_msg(px, header, encoding)


def _image_msg(px: np.ndarray, header, encoding: str):
    """``sensor_msgs/Image`` of a C-contiguous (H, W[, C]) little-endian array (no row padding)."""
    from sensor_msgs.msg import Image

    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(px.shape[0]), int(px.shape[1])
    msg.encoding, msg.is_bigendian = encoding, 0
    msg.step = int(px.strides[0])
    msg.data = px.tobytes()
    return msg


# -- depth ----------------------------------------------------------------------------------
def depth_to_metres(msg) -> np.ndarray:
    """Convert a depth ``sensor_msgs/Image`` to metres.

    Args:
        msg: ``Image`` (or the same fields) with encoding ``16UC1`` / ``mono16``
            (millimetres, 0 = no measurement) or ``32FC1`` (metres; 0, NaN, +-inf or a
            negative value = no measurement). Rows may be padded (``step``).

    Returns:
        (H, W) float32 C-contiguous depth [m]; 0 or NaN where there is no measurement
        (16-bit zeros stay 0; non-finite or negative float values become NaN). A copy.

    Raises:
        ImageDecodeError: another encoding, an empty image, a bad ``step`` / data length.
    """
    enc = msg.encoding
    if enc not in DEPTH_ENCODINGS:
        raise ImageDecodeError("unsupported_encoding", f"unsupported depth encoding '{enc}' "
                               f"(supported: {', '.join(DEPTH_ENCODINGS)})")
    if enc == "32FC1":
        rows = _pixel_rows(msg, 1, 4)
        dt = np.dtype(">f4") if msg.is_bigendian else np.dtype("<f4")
        z = np.ascontiguousarray(rows).view(dt).reshape(int(msg.height), int(msg.width)).astype(np.float32)
        z[~(np.isfinite(z) & (z >= 0))] = np.nan
        return z
    return _u16(_pixel_rows(msg, 1, 2), msg).astype(np.float32) * np.float32(DEPTH_ENCODINGS[enc])


def depth_to_image(depth_m: np.ndarray, header=None, encoding: str = "16UC1"):
    """Build a depth ``sensor_msgs/Image`` from metres (a camera driver's output; tests, tools).

    Args:
        depth_m: (H, W) depth [m]; NaN / <= 0 = no measurement.
        header: ``std_msgs/Header`` to copy, or None.
        encoding: ``16UC1`` (millimetres, rounded, 0 = none, clipped at 65.535 m) or
            ``32FC1`` (metres, NaN = none).

    Raises:
        ValueError: not a 2D array, or another encoding.
    """
    z = np.asarray(depth_m, np.float64)
    if z.ndim != 2 or 0 in z.shape:
        raise ValueError(f"expected a non-empty (H, W) depth array, got {z.shape}")
    valid = np.isfinite(z) & (z > 0)
    if encoding == "16UC1":
        px = np.where(valid, np.clip(np.rint(z * 1e3), 0, 65535), 0).astype("<u2")
    elif encoding == "32FC1":
        px = np.where(valid, z, np.nan).astype("<f4")
    else:
        raise ValueError(f"depth_to_image: unsupported encoding '{encoding}' (supported: 16UC1, 32FC1)")
    return _image_msg(np.ascontiguousarray(px), header, encoding)


# -- compressed (image_transport "compressed" and "compressedDepth") ------------------------
def _payload(msg) -> np.ndarray:
    data = np.frombuffer(memoryview(msg.data).cast("B"), dtype=np.uint8)
    if data.size == 0:
        raise ImageDecodeError("empty_image", f"empty compressed image (format '{msg.format}')")
    return data


def _codec(fmt: str) -> str:
    """'jpeg' or 'png' from a CompressedImage ``format`` string ('' = let OpenCV find out)."""
    f = fmt.lower()
    if "compresseddepth" in f:
        raise ImageDecodeError("unsupported_format", f"compressed format '{fmt}' is a depth image "
                               "(compressedDepth), not a colour image")
    codec = f.split(";", 1)[1] if ";" in f else f
    for name, keys in (("jpeg", ("jpeg", "jpg")), ("png", ("png",))):
        if any(k in codec for k in keys):
            return name
    if codec.strip() == "":
        return ""
    raise ImageDecodeError("unsupported_format", f"unsupported compressed format '{fmt}' "
                           "(supported: jpeg, png, as compressed_image_transport writes them)")


def compressed_to_rgb(msg) -> np.ndarray:
    """Decode a ``sensor_msgs/CompressedImage`` (JPEG or PNG) to RGB with OpenCV.

    Args:
        msg: ``CompressedImage`` (or an object with ``format`` and ``data``).

    Returns:
        (H, W, 3) uint8 C-contiguous RGB (grey replicated; alpha dropped; 16-bit >> 8).

    Raises:
        ImageDecodeError: ``unsupported_format`` (e.g. ``theora``, ``h264``, a
            ``compressedDepth`` frame), ``empty_image``, ``corrupt_compressed`` (OpenCV
            cannot decode it, or a JPEG without its end-of-image marker: a truncated frame
            that libjpeg would return with a grey bottom).
    """
    import cv2

    codec = _codec(msg.format)
    data = _payload(msg)
    if codec == "jpeg" and not (data[:2].tobytes() == b"\xff\xd8" and b"\xff\xd9" in data[-16:].tobytes()):
        raise ImageDecodeError("corrupt_compressed", f"corrupt or truncated JPEG ({data.size} B, "
                               "no start / end-of-image marker)")
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ImageDecodeError("corrupt_compressed", f"cannot decode compressed image "
                               f"(format '{msg.format}', {data.size} B)")
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ImageDecodeError("unsupported_format", f"compressed image of pixel type {img.dtype}")
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
    code = {3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}.get(img.shape[2])
    if code is None:
        raise ImageDecodeError("unsupported_format", f"compressed image with {img.shape[2]} channels")
    return np.ascontiguousarray(cv2.cvtColor(img, code))


def compressed_depth_to_metres(msg) -> np.ndarray:
    """Decode a ``compressedDepth`` ``sensor_msgs/CompressedImage`` to metres.

    Args:
        msg: format ``"16UC1; compressedDepth png"`` (or ``"…; compressedDepth"``),
            ``"32FC1; compressedDepth png"``; data = 12-byte header + 16-bit PNG (module
            docstring).

    Returns:
        (H, W) float32 depth [m]; 0 (16UC1) or NaN (32FC1) where there is no measurement.

    Raises:
        ImageDecodeError: not ``compressedDepth`` or the RVL codec (``unsupported_format``),
            another encoding (``unsupported_encoding``), a header without image or a PNG
            OpenCV cannot decode or that is not 16-bit single-channel (``corrupt_compressed``).
    """
    import cv2

    fmt = str(msg.format)
    encoding, _, codec = (x.strip() for x in fmt.partition(";"))
    if "compressedDepth" not in codec:
        raise ImageDecodeError("unsupported_format", f"depth format '{fmt}' is not compressedDepth")
    if "rvl" in codec:
        raise ImageDecodeError("unsupported_format", f"compressedDepth RVL is not supported ('{fmt}'); "
                               "set the publisher's format parameter to png")
    if encoding not in DEPTH_ENCODINGS:
        raise ImageDecodeError("unsupported_encoding", f"unsupported compressedDepth encoding '{encoding}' "
                               f"(supported: {', '.join(DEPTH_ENCODINGS)})")
    data = _payload(msg)
    if data.size <= COMPRESSED_DEPTH_HEADER.size:
        raise ImageDecodeError("corrupt_compressed", f"compressedDepth message of {data.size} B has no image")
    _, quant_a, quant_b = COMPRESSED_DEPTH_HEADER.unpack(data[:COMPRESSED_DEPTH_HEADER.size].tobytes())
    q = cv2.imdecode(data[COMPRESSED_DEPTH_HEADER.size:], cv2.IMREAD_UNCHANGED)
    if q is None or q.dtype != np.uint16 or q.ndim != 2 or q.size == 0:
        raise ImageDecodeError("corrupt_compressed", f"cannot decode the 16-bit PNG of a compressedDepth "
                               f"message ({data.size} B)")
    if encoding != "32FC1":
        return q.astype(np.float32) * np.float32(DEPTH_ENCODINGS[encoding])
    qf = q.astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.float32(quant_a) / (qf - np.float32(quant_b))
    z[(q == 0) | ~np.isfinite(z) | (z < 0)] = np.nan
    return z


def rgb_to_compressed(rgb: np.ndarray, header=None, codec: str = "jpeg", quality: int = 90):
    """Encode an RGB array as compressed_image_transport does (a camera driver's
    ``…/compressed`` output; used by ``camera_publisher --transport compressed``).

    Args:
        rgb: (H, W, 3) uint8 RGB.
        header: ``std_msgs/Header`` to copy, or None.
        codec: ``jpeg`` (``quality`` 1..100) or ``png``.

    Returns:
        ``sensor_msgs.msg.CompressedImage`` with ``format = "rgb8; <codec> compressed bgr8"``.

    Raises:
        ValueError: wrong array, unknown codec, or OpenCV failed to encode.
    """
    import cv2
    from sensor_msgs.msg import CompressedImage

    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or 0 in rgb.shape:
        raise ValueError(f"expected a non-empty (H, W, 3) uint8 array, got {rgb.shape} {rgb.dtype}")
    params = {"jpeg": [cv2.IMWRITE_JPEG_QUALITY, int(quality)], "png": [cv2.IMWRITE_PNG_COMPRESSION, 1]}
    if codec not in params:
        raise ValueError(f"rgb_to_compressed: unsupported codec '{codec}' (supported: jpeg, png)")
    ok, buf = cv2.imencode("." + ("jpg" if codec == "jpeg" else "png"), rgb[:, :, ::-1], params[codec])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {rgb.shape[1]}x{rgb.shape[0]} image as {codec}")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = f"rgb8; {codec} compressed bgr8"
    msg.data = buf.tobytes()
    return msg


def depth_to_compressed_depth(depth_m: np.ndarray, header=None, encoding: str = "16UC1",
                              depth_max: float = COMPRESSED_DEPTH_MAX_M,
                              depth_quantization: float = COMPRESSED_DEPTH_QUANTIZATION):
    """Encode depth [m] in compressed_depth_image_transport's PNG layout (module docstring).

    Args:
        depth_m: (H, W) depth [m]; NaN / <= 0 = no measurement.
        encoding: ``16UC1`` (millimetres; values beyond ``depth_max`` become 0, as the
            plugin does) or ``32FC1`` (inverse depth quantized with the plugin's parameters:
            ``a = dq (dq + 1)``, ``b = 1 - a / depth_max``, ``q = a / z + b``).

    Returns:
        ``sensor_msgs.msg.CompressedImage``, ``format = "<encoding>; compressedDepth png"``.
    """
    import cv2
    from sensor_msgs.msg import CompressedImage

    z = np.asarray(depth_m, np.float64)
    if z.ndim != 2 or 0 in z.shape:
        raise ValueError(f"expected a non-empty (H, W) depth array, got {z.shape}")
    valid = np.isfinite(z) & (z > 0) & (z < depth_max)
    if encoding == "16UC1":
        quant_a = quant_b = 0.0
        q = np.where(valid, np.rint(z * 1e3), 0).astype(np.uint16)
    elif encoding == "32FC1":
        quant_a = np.float32(depth_quantization * (depth_quantization + 1.0))
        quant_b = np.float32(1.0 - quant_a / np.float32(depth_max))
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(valid, np.float32(quant_a) / z.astype(np.float32) + quant_b, 0)
        q = np.clip(q, 0, 65535).astype(np.uint16)  # truncation, as the plugin's float -> ushort
    else:
        raise ValueError(f"depth_to_compressed_depth: unsupported encoding '{encoding}' (supported: 16UC1, 32FC1)")
    ok, buf = cv2.imencode(".png", q, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError("OpenCV could not encode the depth PNG")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = f"{encoding}; compressedDepth png"
    msg.data = COMPRESSED_DEPTH_HEADER.pack(0, float(quant_a), float(quant_b)) + buf.tobytes()
    return msg


def to_rgb(msg) -> np.ndarray:
    """:func:`image_to_rgb` for an ``Image``, :func:`compressed_to_rgb` for a
    ``CompressedImage`` (told apart by its ``format`` field)."""
    return compressed_to_rgb(msg) if hasattr(msg, "format") else image_to_rgb(msg)


def to_depth_metres(msg) -> np.ndarray:
    """:func:`depth_to_metres` for an ``Image``, :func:`compressed_depth_to_metres` for a
    ``compressedDepth`` ``CompressedImage``."""
    return compressed_depth_to_metres(msg) if hasattr(msg, "format") else depth_to_metres(msg)
