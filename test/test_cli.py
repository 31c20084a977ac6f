"""Tests of the ``hand-mesh run`` command on real hand data (../shared/data/hands)."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import trimesh

from hand_mesh_ros import cli

REPO = Path(__file__).resolve().parents[1]
HAND_FIELDS = {"side", "track_id", "primary", "score", "bbox", "keypoints_2d", "joints", "global_orient", "hand_pose",
               "betas", "transl", "translation_source", "hand_model", "mesh_file"}


def load_frames(out: Path):
    files = sorted((out / "frames").glob("*.json"))
    return files, [json.loads(f.read_text()) for f in files]


def check_hand_record(rec: dict, out: Path):
    assert HAND_FIELDS <= set(rec)
    assert rec["side"] in ("left", "right")
    assert 0.0 <= rec["score"] <= 1.0
    assert np.shape(rec["bbox"]) == (4,)
    assert np.shape(rec["keypoints_2d"]) == (21, 2)
    assert np.shape(rec["joints"]) == (21, 3)
    assert np.shape(rec["global_orient"]) == (3,)
    assert np.shape(rec["hand_pose"]) == (45,)
    assert np.shape(rec["betas"]) == (10,)
    assert np.shape(rec["transl"]) == (3,)
    assert rec["translation_source"] in ("assumed", "intrinsics", "depth")
    joints = np.asarray(rec["joints"])
    assert np.all(joints[:, 2] > 0.05), "hand must be in front of the camera"
    mesh = trimesh.load(out / rec["mesh_file"], process=False)
    assert len(mesh.vertices) == rec["num_vertices"] > 0
    assert len(mesh.faces) > 0
    name = Path(rec["mesh_file"]).name
    assert f"_{rec['side']}_{rec['track_id']}." in name


def overlay_differs_in_bbox(image_rgb: np.ndarray, overlay_png: Path, bbox) -> float:
    """Fraction of pixels inside the bbox that the overlay changed."""
    over = cv2.cvtColor(cv2.imread(str(overlay_png)), cv2.COLOR_BGR2RGB)
    assert over.shape == image_rgb.shape
    x0, y0, x1, y1 = [int(round(v)) for v in bbox]
    diff = np.any(np.abs(over.astype(int) - image_rgb.astype(int)) > 8, axis=2)
    return float(diff[y0:y1, x0:x1].mean()), diff


def test_image(hands_data, tmp_path):
    img_path = hands_data / "mediapipe_samples" / "thumbs-up.png"
    out = tmp_path / "img"
    assert cli.main(["run", "--input", str(img_path), "--output", str(out)]) == 0
    files, frames = load_frames(out)
    assert len(files) == 1 and files[0].name == "000000.json"
    fr = frames[0]
    image = cv2.cvtColor(cv2.imread(str(img_path)), cv2.COLOR_BGR2RGB)
    assert fr["frame"] == 0 and fr["image_file"] == str(img_path)
    assert fr["image_size"] == {"width": image.shape[1], "height": image.shape[0]}
    assert fr["intrinsics"]["assumed"] is True
    assert len(fr["hands"]) == 1
    rec = fr["hands"][0]
    check_hand_record(rec, out)
    assert rec["translation_source"] == "assumed"
    frac, diff = overlay_differs_in_bbox(image, out / "overlay" / "000000.png", rec["bbox"])
    assert frac > 0.2, f"overlay changed only {frac:.0%} of the hand's box"
    # Away from the hand (outside the box grown by 25%) the overlay leaves the image alone.
    x0, y0, x1, y1 = rec["bbox"]
    mx, my = 0.25 * (x1 - x0), 0.25 * (y1 - y0)
    far = np.ones_like(diff)
    far[max(int(y0 - my), 0):int(y1 + my), max(int(x0 - mx), 0):int(x1 + mx)] = False
    assert diff[far].mean() < 0.01
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 1 and summary["hands"] == 1


def test_image_with_given_intrinsics_obj(hands_data, tmp_path):
    img_path = hands_data / "mediapipe_samples" / "thumbs-up.png"
    out = tmp_path / "k"
    assert cli.main(["run", "--input", str(img_path), "--output", str(out), "--fx", "900", "--cx", "300",
                     "--mesh-format", "obj", "--no-overlay"]) == 0
    _, frames = load_frames(out)
    k = frames[0]["intrinsics"]
    assert k["assumed"] is False and k["fx"] == k["fy"] == 900 and k["cx"] == 300
    rec = frames[0]["hands"][0]
    assert rec["mesh_file"].endswith(".obj") and rec["translation_source"] == "intrinsics"
    check_hand_record(rec, out)
    assert not (out / "overlay").exists()


def test_video_first_frames(hands_data, tmp_path, capsys):
    video = hands_data / "mediapipe_samples" / "hand_landmarker_test_video.mp4"
    out = tmp_path / "vid"
    n = 20
    assert cli.main(["run", "--input", str(video), "--output", str(out), "--max-frames", str(n)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(f"frames={n} hands={n} (per frame: 1:{n}) fps=")
    files, frames = load_frames(out)
    assert len(files) == n
    track_ids = set()
    cap = cv2.VideoCapture(str(video))
    for i, fr in enumerate(frames):
        ok, bgr = cap.read()
        assert ok
        assert fr["frame"] == i and fr["image_file"] is None
        assert fr["time_s"] == pytest.approx(i / cap.get(cv2.CAP_PROP_FPS))
        assert len(fr["hands"]) == 1, f"frame {i}: {len(fr['hands'])} hands"
        rec = fr["hands"][0]
        assert rec["side"] == "right", f"frame {i}: side {rec['side']}"
        track_ids.add(rec["track_id"])
        if i in (0, n - 1):
            check_hand_record(rec, out)
            frac, _ = overlay_differs_in_bbox(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB),
                                              out / "overlay" / f"{i:06d}.png", rec["bbox"])
            assert frac > 0.2
    assert len(track_ids) == 1, f"track id changed along the video: {track_ids}"
    assert len(list((out / "meshes").glob("*.ply"))) == n
    vid = cv2.VideoCapture(str(out / "overlay.mp4"))
    assert vid.isOpened() and int(vid.get(cv2.CAP_PROP_FRAME_COUNT)) == n
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == n and summary["hands_per_frame"] == {"1": n} and summary["sides"] == {"right": n}


def test_folder(hands_data, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    src = hands_data / "mediapipe_samples"
    for name in ("thumbs-up.png", "hand_landmarker_test_image.jpg"):
        (folder / name).write_bytes((src / name).read_bytes())
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    assert cli.main(["run", "--input", str(folder), "--output", str(out), "--no-overlay"]) == 0
    files, frames = load_frames(out)
    assert [f["image_file"] for f in frames] == [str(folder / "hand_landmarker_test_image.jpg"),
                                                 str(folder / "thumbs-up.png")]
    assert all(len(f["hands"]) >= 1 for f in frames)


def test_missing_input(tmp_path, capsys):
    missing = tmp_path / "nope.mp4"
    assert cli.main(["run", "--input", str(missing), "--output", str(tmp_path / "o")]) == 2
    assert str(missing) in capsys.readouterr().err


def test_empty_folder(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli.main(["run", "--input", str(empty), "--output", str(tmp_path / "o")]) == 2
    assert str(empty) in capsys.readouterr().err


def test_unreadable_file(tmp_path, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video")
    assert cli.main(["run", "--input", str(bad), "--output", str(tmp_path / "o")]) == 2
    assert str(bad) in capsys.readouterr().err
    bad_png = tmp_path / "broken.png"
    bad_png.write_bytes(b"\x89PNG not really")
    assert cli.main(["run", "--input", str(bad_png), "--output", str(tmp_path / "o2")]) == 2
    assert str(bad_png) in capsys.readouterr().err


def test_console_script_exit_status(tmp_path):
    missing = tmp_path / "missing_dir"
    proc = subprocess.run([sys.executable, "-m", "hand_mesh_ros.cli", "run", "--input", str(missing),
                           "--output", str(tmp_path / "o")], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and str(missing) in proc.stderr


def test_hamer_regressor_on_test5(hands_data, golden_hamer, tmp_path):
    """``--regressor hamer`` with a HaMeR checkpoint (the tiny golden one): both hands of
    test5.jpg get MANO meshes on their sides, with the intrinsics given."""
    out = tmp_path / "hamer"
    img = hands_data / "hamer_example_data" / "test5.jpg"
    assert cli.main(["run", "--input", str(img), "--output", str(out), "--regressor", "hamer",
                     "--checkpoint", str(golden_hamer / "tiny_hamer.ckpt"), "--device", "cpu",
                     "--fx", "900", "--fy", "910", "--no-overlay"]) == 0
    _, frames = load_frames(out)
    hands = frames[0]["hands"]
    assert sorted(h["side"] for h in hands) == ["left", "right"]
    for rec in hands:
        check_hand_record(rec, out)
        assert rec["hand_model"] == "mano" and rec["num_vertices"] == 778
        assert rec["translation_source"] == "intrinsics"


def test_video_tracking_and_smoothing_flags(hands_data, tmp_path, capsys):
    """``--smoothing one_euro --smoothing-min-cutoff 0.5`` steadies the published joints of
    the video (less frame-to-frame acceleration than unsmoothed); a value out of range is a
    one-line error naming the parameter."""
    from hand_mesh_ros.core.smoothing import joint_accelerations

    video = hands_data / "mediapipe_samples" / "hand_landmarker_test_video.mp4"
    runs = {}
    for name, flags in (("raw", []), ("smooth", ["--smoothing", "one_euro", "--smoothing-min-cutoff", "0.5",
                                                 "--smoothing-beta", "0.2", "--track-max-missed", "3",
                                                 "--side-hysteresis", "5"])):
        out = tmp_path / name
        assert cli.main(["run", "--input", str(video), "--output", str(out), "--max-frames", "40",
                         "--no-overlay", *flags]) == 0
        _, frames = load_frames(out)
        runs[name] = np.array([fr["hands"][0]["joints"] for fr in frames], np.float64)
    raw, smooth = (joint_accelerations(runs[k]).mean() for k in ("raw", "smooth"))
    assert smooth < 0.6 * raw, (raw, smooth)
    capsys.readouterr()
    assert cli.main(["run", "--input", str(video), "--output", str(tmp_path / "bad"), "--max-frames", "2",
                     "--smoothing-min-cutoff", "-1"]) == 1
    assert "smoothing_min_cutoff" in capsys.readouterr().err
