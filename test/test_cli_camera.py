"""``hand-mesh run`` with a camera_calibration YAML (lens distortion) and a depth input."""
import json

import cv2
import numpy as np
import pytest
import trimesh

from hand_mesh_ros import cli
from hand_mesh_ros.core.types import CameraIntrinsics
from test_depth import sensor, zbuffer

YAML = """image_width: {w}
image_height: {h}
camera_name: test
camera_matrix: {{rows: 3, cols: 3, data: [{f}, 0, {cx}, 0, {f}, {cy}, 0, 0, 1]}}
distortion_model: plumb_bob
distortion_coefficients: {{rows: 1, cols: 5, data: [{d}]}}
"""


def _yaml(tmp_path, w, h, f, d=(0.0, 0.0, 0.0, 0.0, 0.0)):
    path = tmp_path / "cam.yaml"
    path.write_text(YAML.format(w=w, h=h, f=f, cx=w / 2, cy=h / 2, d=", ".join(map(str, d))))
    return path


def _frames(out):
    return [json.loads(p.read_text()) for p in sorted((out / "frames").glob("*.json"))]


def test_camera_info_yaml_and_depth_folder(hands_data, tmp_path):
    """Run once with the YAML; write a depth image consistent with the colour image for a hand
    1.25x the model's size; the second run places the hand 1.25x as far, from depth."""
    img = hands_data / "mediapipe_samples" / "thumbs-up.png"
    rgb = cv2.imread(str(img))
    h, w = rgb.shape[:2]
    d = (-0.05, 0.01, 0.0, 0.0, 0.0)
    cam_yaml = _yaml(tmp_path, w, h, 0.9 * w, d)
    assert cli.main(["run", "--input", str(img), "--output", str(tmp_path / "a"), "--camera-info", str(cam_yaml),
                     "--no-overlay"]) == 0
    fr = _frames(tmp_path / "a")[0]
    assert fr["intrinsics"]["distortion_model"] == "plumb_bob" and fr["intrinsics"]["distortion"] == list(d)
    assert not fr["intrinsics"]["assumed"]
    (hand,) = fr["hands"]
    assert hand["translation_source"] == "intrinsics"
    mesh = trimesh.load(tmp_path / "a" / hand["mesh_file"], process=False)
    K = CameraIntrinsics(0.9 * w, 0.9 * w, w / 2, h / 2, w, h, distortion_model="plumb_bob", distortion=d)
    depth = sensor(zbuffer(1.25 * np.asarray(mesh.vertices), np.asarray(mesh.faces), K, (h, w)), background_m=1.8)
    folder = tmp_path / "depth"
    folder.mkdir()
    cv2.imwrite(str(folder / "000000.png"), np.round(depth * 1000).astype(np.uint16))
    assert cli.main(["run", "--input", str(img), "--output", str(tmp_path / "b"), "--camera-info", str(cam_yaml),
                     "--depth", str(folder), "--no-overlay"]) == 0
    (got,) = _frames(tmp_path / "b")[0]["hands"]
    assert got["translation_source"] == "depth"
    want = 1.25 * np.asarray(mesh.vertices).mean(0)
    got_mesh = trimesh.load(tmp_path / "b" / got["mesh_file"], process=False)
    assert np.linalg.norm(np.asarray(got_mesh.vertices).mean(0) - want) < 0.01


def test_depth_video_of_zeros_falls_back_and_is_counted(hands_data, tmp_path):
    video = hands_data / "mediapipe_samples" / "hand_landmarker_test_video.mp4"
    cap = cv2.VideoCapture(str(video))
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    depth_video = tmp_path / "depth.mkv"
    wr = cv2.VideoWriter(str(depth_video), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"FFV1"), 25, (w, h),
                         [cv2.VIDEOWRITER_PROP_DEPTH, cv2.CV_16U, cv2.VIDEOWRITER_PROP_IS_COLOR, 0])
    assert wr.isOpened()
    for _ in range(3):
        wr.write(np.zeros((h, w), np.uint16))
    wr.release()
    out = tmp_path / "v"
    assert cli.main(["run", "--input", str(video), "--output", str(out), "--fx", "520", "--fy", "540",
                     "--depth", str(depth_video), "--max-frames", "3", "--no-overlay"]) == 0
    frames = _frames(out)
    n_hands = sum(len(f["hands"]) for f in frames)
    assert len(frames) == 3 and n_hands >= 3
    assert all(hd["translation_source"] == "intrinsics" for f in frames for hd in f["hands"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fallbacks"] == {"depth_too_few_pixels": n_hands}
    # the depth video ends before the colour video: a clear error naming it
    assert cli.main(["run", "--input", str(video), "--output", str(tmp_path / "w"), "--fx", "520",
                     "--depth", str(depth_video), "--max-frames", "5", "--no-overlay"]) == 2


@pytest.mark.parametrize("make, code, message", [
    (lambda p: p / "nothing_here", 2, "depth input not found"),
    (lambda p: (p / "empty").mkdir() or p / "empty", 2, "no depth files"),
    (lambda p: cv2.imwrite(str(p / "d8.png"), np.zeros((4, 4), np.uint8)) and p / "d8.png", 2, "16-bit"),
])
def test_bad_depth_inputs_are_clear_errors(hands_data, tmp_path, capsys, make, code, message):
    img = hands_data / "mediapipe_samples" / "thumbs-up.png"
    args = ["run", "--input", str(img), "--output", str(tmp_path / "o"), "--fx", "500", "--depth",
            str(make(tmp_path)), "--no-overlay"]
    assert cli.main(args) == code
    assert message in capsys.readouterr().err


def test_camera_info_errors(hands_data, tmp_path, capsys):
    img = hands_data / "mediapipe_samples" / "thumbs-up.png"
    wrong = _yaml(tmp_path, 64, 48, 50.0)
    assert cli.main(["run", "--input", str(img), "--output", str(tmp_path / "o"), "--camera-info", str(wrong)]) == 2
    assert "is for 64x48 images" in capsys.readouterr().err
    assert cli.main(["run", "--input", str(img), "--output", str(tmp_path / "o"), "--camera-info", str(wrong),
                     "--fx", "500"]) == 2
    assert "not both" in capsys.readouterr().err


def test_rectified_takes_the_projection_matrix(hands_data, tmp_path):
    """``--rectified`` with a calibration YAML that has a lens and a rectified P: the frame's
    intrinsics are P's, with no distortion; without it K and D."""
    img = hands_data / "mediapipe_samples" / "thumbs-up.png"
    h, w = cv2.imread(str(img)).shape[:2]
    d = (-0.05, 0.01, 0.0, 0.0, 0.0)
    path = _yaml(tmp_path, w, h, 0.9 * w, d)
    f_rect = 0.8 * w
    path.write_text(path.read_text() + "projection_matrix: {rows: 3, cols: 4, data: "
                    f"[{f_rect}, 0, {w / 2 + 4}, 0, 0, {f_rect}, {h / 2 - 2}, 0, 0, 0, 1, 0]}}\n")
    for flag, out in (([], "raw"), (["--rectified"], "rect")):
        assert cli.main(["run", "--input", str(img), "--output", str(tmp_path / out), "--camera-info", str(path),
                         "--no-overlay", *flag]) == 0
    raw, rect = (_frames(tmp_path / o)[0] for o in ("raw", "rect"))
    assert raw["intrinsics"]["fx"] == pytest.approx(0.9 * w) and raw["intrinsics"]["distortion"] == list(d)
    k = rect["intrinsics"]
    assert (k["fx"], k["fy"], k["cx"], k["cy"]) == pytest.approx((f_rect, f_rect, w / 2 + 4, h / 2 - 2))
    assert not any(k["distortion"] or [])
    assert len(rect["hands"]) == 1 and rect["hands"][0]["translation_source"] == "intrinsics"
