"""Compressed images (image_transport ``compressed`` / ``compressedDepth``) and depth images
decoded to numpy: real hand images encoded by OpenCV, depth in both encodings, corrupt and
unsupported messages."""
import struct

import cv2
import numpy as np
import pytest

pytest.importorskip("rclpy")
from sensor_msgs.msg import CompressedImage  # noqa: E402

from hand_mesh_ros.ros.image_conversion import (ImageDecodeError, compressed_depth_to_metres,  # noqa: E402
                                                compressed_to_rgb, depth_to_compressed_depth,
                                                depth_to_image, depth_to_metres, rgb_to_compressed,
                                                to_depth_metres, to_rgb)


@pytest.fixture
def hand_rgb(hands_data):
    bgr = cv2.imread(str(hands_data / "mediapipe_samples" / "hand_landmarker_test_image.jpg"))
    return np.ascontiguousarray(bgr[:, :, ::-1])


def _compressed(fmt, data):
    m = CompressedImage(format=fmt)
    m.data = bytes(data)
    return m


def test_png_as_compressed_image_transport_writes_it_is_lossless(hand_rgb):
    ok, buf = cv2.imencode(".png", hand_rgb[:, :, ::-1])  # the plugin encodes bgr8
    out = compressed_to_rgb(_compressed("rgb8; png compressed bgr8", buf))
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, hand_rgb)
    np.testing.assert_array_equal(to_rgb(rgb_to_compressed(hand_rgb, codec="png")), hand_rgb)


@pytest.mark.parametrize("fmt", ["rgb8; jpeg compressed bgr8", "bgr8; jpeg compressed bgr8", "jpeg", ""])
def test_jpeg_decodes_to_the_image(hand_rgb, fmt):
    ok, buf = cv2.imencode(".jpg", hand_rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    out = compressed_to_rgb(_compressed(fmt, buf))
    assert out.shape == hand_rgb.shape
    err = np.abs(out.astype(int) - hand_rgb).mean()
    assert err < 3.0, err  # JPEG at quality 95; a channel swap would give tens of levels
    swapped = np.abs(out[:, :, ::-1].astype(int) - hand_rgb).mean()
    assert swapped > 4 * err


def test_mono_jpeg_and_our_encoder(hand_rgb):
    grey = cv2.cvtColor(hand_rgb, cv2.COLOR_RGB2GRAY)
    ok, buf = cv2.imencode(".jpg", grey)
    out = compressed_to_rgb(_compressed("mono8; jpeg compressed mono8", buf))
    assert out.shape == hand_rgb.shape and (out[:, :, 0] == out[:, :, 2]).all()
    msg = rgb_to_compressed(hand_rgb, codec="jpeg", quality=90)
    assert msg.format == "rgb8; jpeg compressed bgr8" and bytes(msg.data[:2]) == b"\xff\xd8"
    assert np.abs(to_rgb(msg).astype(int) - hand_rgb).mean() < 4.0


def test_corrupt_and_unsupported_compressed_frames(hand_rgb):
    ok, jpg = cv2.imencode(".jpg", hand_rgb[:, :, ::-1])
    ok, png = cv2.imencode(".png", hand_rgb[:, :, ::-1])
    cases = {
        "corrupt_compressed": [("jpeg", jpg[: len(jpg) // 2]),  # truncated: libjpeg would fill it grey
                               ("png", png[: len(png) // 2]),
                               ("jpeg", b"\x00" * 500),
                               ("png", np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8))],
        "unsupported_format": [("rgb8; theora", jpg), ("h264", jpg), ("16UC1; compressedDepth png", png)],
        "empty_image": [("jpeg", b"")],
    }
    for reason, msgs in cases.items():
        for fmt, data in msgs:
            with pytest.raises(ImageDecodeError) as e:
                compressed_to_rgb(_compressed(fmt, data))
            assert e.value.reason == reason, (fmt, str(e.value))


def _plugin_layout(encoding, quant_a, quant_b, q16):
    """compressed_depth_image_transport's message, built independently of our encoder:
    int32 format, two float32 quantization parameters, then a 16-bit PNG."""
    ok, png = cv2.imencode(".png", q16)
    return _compressed(f"{encoding}; compressedDepth png", struct.pack("<iff", 0, quant_a, quant_b) + png.tobytes())


def _depth_scene(h=120, w=160):
    """A slanted plane from 0.4 to 3.4 m with holes (0) and a far patch (12 m, beyond 10 m)."""
    z = np.linspace(0.4, 3.4, w)[None, :].repeat(h, 0)
    z[10:20, 10:30] = 0.0
    z[40:50, 100:120] = 12.0
    return z


def test_compressed_depth_16uc1_millimetres_exact():
    z = _depth_scene()
    mm = np.rint(np.where(z < 10, z, 0) * 1000).astype(np.uint16)
    out = compressed_depth_to_metres(_plugin_layout("16UC1", 0.0, 0.0, mm))
    assert out.dtype == np.float32 and out.shape == z.shape
    np.testing.assert_allclose(out, mm * 1e-3, rtol=0, atol=1e-6)
    ours = to_depth_metres(depth_to_compressed_depth(z, encoding="16UC1"))
    np.testing.assert_array_equal(ours, out)
    assert (ours[10:20, 10:30] == 0).all() and (ours[40:50, 100:120] == 0).all()  # beyond depth_max


def test_compressed_depth_32fc1_inverse_depth():
    z = _depth_scene()
    dq, zmax = 100.0, 10.0
    a = np.float32(dq * (dq + 1))
    b = np.float32(1 - a / zmax)
    valid = (z > 0) & (z < zmax)
    q = np.zeros(z.shape, np.uint16)
    q[valid] = (a / z[valid].astype(np.float32) + b).astype(np.uint16)
    out = compressed_depth_to_metres(_plugin_layout("32FC1", a, b, q))
    assert np.isnan(out[~valid]).all() and np.isfinite(out[valid]).all()
    # quantization of 1/z: |dz| <= z^2 / a (0.1 mm at 1 m, 1.1 mm at 3.4 m)
    assert (np.abs(out[valid] - z[valid]) <= z[valid] ** 2 / a + 1e-6).all()
    ours = to_depth_metres(depth_to_compressed_depth(z, encoding="32FC1"))
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(out))
    np.testing.assert_allclose(ours[valid], out[valid], rtol=1e-6)


def test_compressed_depth_bad_messages():
    z = _depth_scene(20, 30)
    good = depth_to_compressed_depth(z)
    bad = {
        "unsupported_format": [_compressed("16UC1; compressedDepth rvl", bytes(good.data)),
                               _compressed("16UC1; png", bytes(good.data))],
        "unsupported_encoding": [_compressed("rgb8; compressedDepth png", bytes(good.data))],
        "corrupt_compressed": [_compressed("16UC1; compressedDepth png", bytes(good.data)[:12]),
                               _compressed("16UC1; compressedDepth png", bytes(good.data)[:40]),
                               _plugin_layout("16UC1", 0, 0, np.zeros((4, 4), np.uint8))],  # 8-bit PNG
    }
    for reason, msgs in bad.items():
        for m in msgs:
            with pytest.raises(ImageDecodeError) as e:
                compressed_depth_to_metres(m)
            assert e.value.reason == reason, (m.format, str(e.value))


@pytest.mark.parametrize("bigendian", [0, 1])
def test_raw_depth_16uc1_and_32fc1(bigendian):
    z = _depth_scene(6, 9)
    mm = np.rint(np.where(z < 10, z, 0) * 1000).astype(">u2" if bigendian else "<u2")
    msg = depth_to_image(z, encoding="16UC1")
    msg.is_bigendian, msg.data = bigendian, mm.tobytes()
    np.testing.assert_allclose(depth_to_metres(msg), mm.astype(np.float32) * 1e-3, atol=1e-6)
    f = z.astype(">f4" if bigendian else "<f4")
    f[0, 0], f[0, 1], f[0, 2] = np.nan, np.inf, -1.0
    # padded rows (step > width * 4): the padding must not leak in
    rows = np.zeros((6, 9 * 4 + 8), np.uint8)
    rows[:, :36] = f.view(np.uint8).reshape(6, 36)
    msg = depth_to_image(z, encoding="32FC1")
    msg.is_bigendian, msg.step, msg.data = bigendian, 44, rows.tobytes()
    out = to_depth_metres(msg)
    assert out.dtype == np.float32 and out.shape == (6, 9)
    assert np.isnan(out[0, :3]).all()
    np.testing.assert_allclose(out.reshape(-1)[3:], z.astype(np.float32).reshape(-1)[3:])


def test_raw_depth_bad_messages():
    msg = depth_to_image(np.ones((4, 5)), encoding="16UC1")
    msg.encoding = "rgb8"
    with pytest.raises(ImageDecodeError, match="unsupported depth encoding 'rgb8'") as e:
        depth_to_metres(msg)
    assert e.value.reason == "unsupported_encoding"
    msg = depth_to_image(np.ones((4, 5)), encoding="16UC1")
    msg.data = bytes(msg.data)[:-2]
    with pytest.raises(ImageDecodeError) as e:
        depth_to_metres(msg)
    assert e.value.reason == "bad_layout"
