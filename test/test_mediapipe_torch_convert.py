"""TFLite -> torch conversion of MediaPipe's four hand networks: raw outputs against the
LiteRT interpreter's (../shared/golden/mediapipe_hands), padding, and bad model files."""
import struct

import numpy as np
import pytest
import torch

from hand_mesh_ros.core.detectors.mediapipe_torch.cache import load_network
from hand_mesh_ros.core.detectors.mediapipe_torch.convert import (UnsupportedOperatorError, convert_graph,
                                                                   same_padding)
from hand_mesh_ros.core.detectors.mediapipe_torch.models import model_files
from hand_mesh_ros.core.detectors.mediapipe_torch.network import build_network
from hand_mesh_ros.core.detectors.mediapipe_torch.tflite_reader import TFLiteFormatError, read_tflite


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tflite_cache")


def _run(net, images_u8):
    x = torch.from_numpy(images_u8.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
    with torch.inference_mode():
        return [o.numpy() for o in net(x)]


@pytest.mark.parametrize("variant", ["full", "lite"])
def test_palm_detector_matches_litert(golden_mediapipe, cache_dir, variant):
    """Box / keypoint regressors (pixels of the 192 input, values up to ~170) and score
    logits of 5 real letterboxed images. The LiteRT reference itself is ~9e-4 away from a
    float64 execution on the largest values, so the bound there scales with the value."""
    net = load_network(model_files(variant)[0], cache_dir)
    images = np.load(golden_mediapipe / "palm_inputs.npz")["images"]
    ref = np.load(golden_mediapipe / f"palm_{variant}.npz")
    regressors, logits = _run(net, images)
    assert regressors.shape == (5, 2016, 18) and logits.shape == (5, 2016, 1)
    np.testing.assert_allclose(logits, ref["scores"], rtol=0, atol=1e-3)
    np.testing.assert_allclose(regressors, ref["regressors"], rtol=1e-5, atol=1e-3)
    # the anchors that can become detections (score > 0.01) agree far tighter
    live = 1.0 / (1.0 + np.exp(-ref["scores"][..., 0])) > 0.01
    assert live.sum() > 20
    assert np.abs(regressors - ref["regressors"])[live].max() < 2e-4


@pytest.mark.parametrize("variant", ["full", "lite"])
def test_hand_landmark_network_matches_litert(golden_mediapipe, cache_dir, variant):
    net = load_network(model_files(variant)[1], cache_dir)
    crops = np.load(golden_mediapipe / "landmark_inputs.npz")["crops"]
    ref = np.load(golden_mediapipe / f"landmark_{variant}.npz")
    landmarks, presence, handedness, world = _run(net, crops)
    np.testing.assert_allclose(landmarks, ref["landmarks"], rtol=0, atol=1e-3)  # crop pixels
    np.testing.assert_allclose(presence, ref["presence"], rtol=0, atol=1e-3)
    np.testing.assert_allclose(handedness, ref["handedness"], rtol=0, atol=1e-3)
    np.testing.assert_allclose(world, ref["world"], rtol=0, atol=1e-3)  # metres


def test_batch_of_n_equals_n_single_forwards(golden_mediapipe, cache_dir):
    net = load_network(model_files("full")[1], cache_dir)
    crops = np.load(golden_mediapipe / "landmark_inputs.npz")["crops"]
    batched = _run(net, crops)
    single = [_run(net, crops[i:i + 1]) for i in range(len(crops))]
    for k in range(4):
        np.testing.assert_allclose(batched[k], np.concatenate([s[k] for s in single]), rtol=0, atol=1e-4)


def test_same_padding_is_asymmetric_for_stride_two():
    assert same_padding(192, 5, 2) == (1, 2)  # out 96: total 3 = 1 before + 2 after
    assert same_padding(96, 5, 1) == (2, 2)
    assert same_padding(224, 3, 2) == (0, 1)
    assert same_padding(48, 2, 2) == (0, 0)
    spec = convert_graph(read_tflite(model_files("full")[0].read_bytes()))
    first = spec.layers[0]
    assert first["kind"] == "conv2d" and first["stride"] == [2, 2] and first["padding"] == [1, 2, 1, 2]


def _with_opcode_replaced(raw: bytes, old: int, new: int) -> bytes:
    """The model with every operator code ``old`` turned into ``new`` (both code fields)."""
    import tflite

    model = tflite.Model.GetRootAsModel(raw, 0)
    buf = bytearray(raw)
    patched = 0
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        if max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()) != old:
            continue
        for field, fmt in ((4, "<b"), (10, "<i")):
            off = oc._tab.Offset(field)
            if off:
                struct.pack_into(fmt, buf, oc._tab.Pos + off, new)
                patched += 1
    assert patched
    return bytes(buf)


def test_unknown_operator_names_it_and_writes_no_cache(tmp_path):
    from tflite.BuiltinOperator import BuiltinOperator

    raw = _with_opcode_replaced(model_files("lite")[0].read_bytes(), BuiltinOperator.PRELU, BuiltinOperator.SOFTMAX)
    bad = tmp_path / "models" / "palm_detection_lite.tflite"
    bad.parent.mkdir()
    bad.write_bytes(raw)
    cache = tmp_path / "cache"
    with pytest.raises(UnsupportedOperatorError, match=r"operator SOFTMAX \(#\d+\) is not supported"):
        load_network(bad, cache)
    assert not cache.exists() or not any(cache.iterdir())


def test_not_a_tflite_file_is_a_clear_error(tmp_path):
    with pytest.raises(TFLiteFormatError, match="not a TensorFlow Lite model"):
        read_tflite(b"PK\x03\x04 certainly not a flatbuffer")
    raw = model_files("lite")[0].read_bytes()
    with pytest.raises(TFLiteFormatError):
        read_tflite(raw[: len(raw) // 3])  # truncated: buffers point past the end


def test_converted_module_keeps_tflite_output_order_and_names():
    spec = convert_graph(read_tflite(model_files("lite")[1].read_bytes()))
    assert spec.output_names == ["Identity", "Identity_1", "Identity_2", "Identity_3"]
    assert spec.input_shapes == [[1, 224, 224, 3]]
    net = build_network(spec)
    with torch.inference_mode():
        out = net(torch.zeros(3, 3, 224, 224))
    assert [tuple(o.shape) for o in out] == [(3, 63), (3, 1), (3, 1), (3, 63)]
