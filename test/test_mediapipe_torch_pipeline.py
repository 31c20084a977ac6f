"""Detector mediapipe_torch inside HandMeshPipeline and the offline CLI; the ``auto`` choice."""
import json

import numpy as np
import pytest

from hand_mesh_ros import cli
from hand_mesh_ros.core.detectors import BY_FRAME_SIZE, resolve_detector
from hand_mesh_ros.core.detectors.mediapipe_torch.cache import CACHE_DIR_ENV
from hand_mesh_ros.core.pipeline import HandMeshPipeline, PipelineConfig
from hand_mesh_ros.core.types import CameraIntrinsics


@pytest.fixture(autouse=True)
def private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path_factory.getbasetemp() / "tflite_cache"))


def _rgb(path):
    import cv2
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_auto_is_mediapipe_torch_on_cuda_and_the_graph_or_by_frame_size_on_the_cpu():
    assert resolve_detector("auto", "cuda") == resolve_detector("auto", "cuda", "auto") == "mediapipe_torch"
    assert resolve_detector("auto", "cpu") == "mediapipe"  # tiling off (the function's default)
    assert resolve_detector("auto", "cpu", "off") == "mediapipe"
    assert resolve_detector("auto", "cpu", "auto") == BY_FRAME_SIZE == "mediapipe+mediapipe_torch"
    assert resolve_detector("auto", "cpu", 600) == BY_FRAME_SIZE
    assert resolve_detector("mediapipe_torch", "cpu") == "mediapipe_torch"
    assert resolve_detector("mediapipe", "cpu", "auto") == "mediapipe"
    with pytest.raises(ValueError, match=r"parameter 'detector': 'yolo'"):
        resolve_detector("yolo", "cpu")
    pipe = HandMeshPipeline(PipelineConfig(device="cpu"))
    assert pipe.detector_name == BY_FRAME_SIZE  # detection_tiling defaults to auto
    pipe.close()
    pipe = HandMeshPipeline(PipelineConfig(device="cpu", detection_tiling="off"))
    assert pipe.detector_name == "mediapipe"
    pipe.close()


def test_bad_detector_model_names_the_parameter():
    with pytest.raises(ValueError, match=r"parameter 'detector_model': 'huge'"):
        PipelineConfig(detector_model="huge").validate()


@pytest.mark.parametrize("model", ["full", "lite"])
def test_pipeline_with_mediapipe_torch_agrees_with_the_graph(hands_data, model):
    """Both hands of test5.jpg, same sides and keypoints as MediaPipe's own graph, and the
    MANO hands placed in front of the camera."""
    img = _rgb(hands_data / "hamer_example_data" / "test5.jpg")
    h, w = img.shape[:2]
    k = CameraIntrinsics(1000.0, 1000.0, w / 2, h / 2, w, h)
    results = {}
    for det in ("mediapipe", "mediapipe_torch"):
        pipe = HandMeshPipeline(PipelineConfig(detector=det, detector_model=model, device="cpu",
                                               static_image_mode=True, detection_tiling="off"))
        assert pipe.detector_name == det
        results[det] = pipe.process(img, k)
        pipe.close()
    ours, ref = results["mediapipe_torch"].hands, results["mediapipe"].hands
    assert sorted(x.side for x in ours) == sorted(x.side for x in ref) == [0, 1]
    for hand in ours:
        other = next(r for r in ref if r.side == hand.side)
        assert np.median(np.linalg.norm(hand.keypoints_2d - other.keypoints_2d, axis=1)) < 1.0
        assert (hand.joints[:, 2] > 0.1).all()


def test_process_batch_sends_all_cameras_through_one_forward(hands_data):
    pipe = HandMeshPipeline(PipelineConfig(detector="mediapipe_torch", device="cpu", static_image_mode=True,
                                           detection_tiling="off"))
    sizes = []
    net = pipe.detector.palm_net
    pipe.detector.palm_net = lambda x: (sizes.append(x.shape[0]), net(x))[1]
    images = [_rgb(hands_data / "hamer_example_data" / n) for n in ("test1.jpg", "test3.jpg", "test5.jpg")]
    out = pipe.process_batch([(img, None, f"cam{i}") for i, img in enumerate(images)])
    assert sizes == [3]
    assert [len(r.hands) for r in out] == [2, 1, 2]
    pipe.close()


def test_cli_detector_options(hands_data, tmp_path):
    out = tmp_path / "run"
    args = ["run", "--input", str(hands_data / "mediapipe_samples" / "hand_landmarker_test_image.jpg"),
            "--output", str(out), "--detector", "mediapipe_torch", "--detector-model", "lite", "--no-overlay"]
    assert cli.main(args) == 0
    frame = json.loads(next((out / "frames").glob("*.json")).read_text())
    assert [h["side"] for h in frame["hands"]] == ["right"]
    assert cli.main(["run", "--input", str(hands_data / "mediapipe_samples" / "thumbs-up.png"),
                     "--output", str(tmp_path / "bad"), "--detector-model", "huge"]) == 1
