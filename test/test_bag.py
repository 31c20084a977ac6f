"""rosbag2 in and out of ``hand-mesh run``: bags written with ``rosbags`` from real video
frames, the CLI run on them, the output bag read back with ``rosbags`` (an independent CDR
reader, with the message definitions stored in the bag) and checked field by field against
the frame's JSON and mesh; bad bags give a clear error or counted skips."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import trimesh
import yaml

pytest.importorskip("rosbags")
from rosbags.highlevel import AnyReader  # noqa: E402
from rosbags.rosbag2 import StoragePlugin, Writer  # noqa: E402
from rosbags.typesys import Stores, get_typestore  # noqa: E402

from hand_mesh_ros import cli  # noqa: E402
from hand_mesh_ros.bag import BagFrameSource, _msg_folder  # noqa: E402
from hand_mesh_ros.core.types import JOINT_NAMES  # noqa: E402
from hand_mesh_ros.frames import InputError  # noqa: E402

TS = get_typestore(Stores.ROS2_KILTED)
FX, FY, CX, CY = 520.0, 540.0, 318.0, 182.0  # hand_landmarker_test_video.mp4 is 640x360
T0 = 1_700_000_000 * 10 ** 9
FRAME_ID = "cam_color_optical_frame"
SOURCES = {"assumed": 0, "intrinsics": 1, "depth": 2}


@pytest.fixture(scope="module")
def video_frames():
    from conftest import HANDS_DATA
    video = HANDS_DATA / "mediapipe_samples" / "hand_landmarker_test_video.mp4"
    if not video.exists():
        pytest.skip(f"test data not found: {video}")
    cap = cv2.VideoCapture(str(video))
    frames = []
    for _ in range(8):
        ok, bgr = cap.read()
        assert ok
        frames.append(np.ascontiguousarray(bgr[:, :, ::-1]))
    cap.release()
    return frames


def _header(stamp):
    H, T = TS.types["std_msgs/msg/Header"], TS.types["builtin_interfaces/msg/Time"]
    return H(stamp=T(sec=stamp // 10 ** 9, nanosec=stamp % 10 ** 9), frame_id=FRAME_ID)


def _image(rgb, stamp, encoding="rgb8"):
    Img = TS.types["sensor_msgs/msg/Image"]
    h, w = rgb.shape[:2]
    return Img(header=_header(stamp), height=h, width=w, encoding=encoding, is_bigendian=0, step=3 * w,
               data=np.ascontiguousarray(rgb).reshape(-1))


def _jpeg(rgb, stamp, truncate=False):
    C = TS.types["sensor_msgs/msg/CompressedImage"]
    ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
    data = buf.reshape(-1)[: len(buf) // 2] if truncate else buf.reshape(-1)
    return C(header=_header(stamp), format="rgb8; jpeg compressed bgr8", data=data.astype(np.uint8))


def _camera_info(stamp, w=640, h=360):
    CI, ROI = TS.types["sensor_msgs/msg/CameraInfo"], TS.types["sensor_msgs/msg/RegionOfInterest"]
    return CI(header=_header(stamp), height=h, width=w, distortion_model="plumb_bob", d=np.zeros(5),
              k=np.array([FX, 0, CX, 0, FY, CY, 0, 0, 1.0]), r=np.eye(3).reshape(-1),
              p=np.array([FX, 0, CX, 0, 0, FY, CY, 0, 0, 0, 1.0, 0]), binning_x=0, binning_y=0,
              roi=ROI(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def write_bag(path, messages, storage=StoragePlugin.MCAP):
    """``messages``: (topic, message, stamp) in order; written at log time = stamp + 5 ms."""
    conns = {}
    with Writer(path, version=9, storage_plugin=storage) as w:
        for topic, msg, stamp in messages:
            if topic not in conns:
                conns[topic] = w.add_connection(topic, msg.__msgtype__, typestore=TS)
            w.write(conns[topic], stamp + 5_000_000, TS.serialize_cdr(msg, msg.__msgtype__))
    return path


def _camera_messages(frames, topic="/camera/color/image_raw", make=_image, info_topic="/camera/color/camera_info",
                     info_size=(640, 360)):
    out = []
    for k, rgb in enumerate(frames):
        stamp = T0 + k * 40_000_000  # 25 fps
        out.append((topic, make(rgb, stamp), stamp))
        if info_topic:
            out.append((info_topic, _camera_info(stamp, *info_size), stamp))
    return out


def _run(*args):
    return cli.main(["run", *map(str, args), "--no-overlay"])


def _read(path):
    """{topic: [(log time, message)]} and the connections, decoded with the bag's own definitions."""
    out = {}
    with AnyReader([Path(path)]) as r:
        conns = {c.topic: c for c in r.connections}
        for conn, t, raw in r.messages():
            out.setdefault(conn.topic, []).append((t, r.deserialize(raw, conn.msgtype), bytes(raw)))
    return out, conns


def _installed_hash(name):
    doc = json.loads((_msg_folder() / f"{name}.json").read_text())
    return next(h["hash_string"] for h in doc["type_hashes"] if h["type_name"] == f"hand_mesh_msgs/msg/{name}")


def test_bag_in_bag_out_every_field(tmp_path, video_frames):
    bag = write_bag(tmp_path / "in_bag", _camera_messages(video_frames) + [
        ("/imu", TS.types["std_msgs/msg/String"](data="not an image"), T0)])
    out_bag = tmp_path / "hands.mcap"
    assert _run("--input", bag, "--output", tmp_path / "out", "--output-bag", out_bag, "--bag-images") == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["frames"] == 8 and summary["image_topic"] == "/camera/color/image_raw"
    assert summary["camera_info_topic"] == "/camera/color/camera_info" and summary["skipped"] == {}
    assert out_bag.is_file() and not list(tmp_path.glob(".hands.mcap.partial"))

    topics, conns = _read(out_bag)
    assert {t: c.msgtype for t, c in conns.items()} == {
        "/hands/mesh": "hand_mesh_msgs/msg/HandMeshArray", "/tf": "tf2_msgs/msg/TFMessage",
        "/hands/markers": "visualization_msgs/msg/MarkerArray", "/camera/color/image_raw": "sensor_msgs/msg/Image",
        "/camera/color/camera_info": "sensor_msgs/msg/CameraInfo"}
    # the definitions stored in the bag, with the type hash a ROS 2 build of hand_mesh_msgs computes
    mesh_conn = conns["/hands/mesh"]
    assert "HandMesh[] hands" in mesh_conn.msgdef.data and "MSG: hand_mesh_msgs/HandMesh" in mesh_conn.msgdef.data
    # (rosbag2 keeps the hash in its metadata, inside the MCAP file; rosbags does not surface it)
    assert _installed_hash("HandMeshArray").encode() in out_bag.read_bytes()
    assert len(topics["/hands/mesh"]) == 8

    # the input images, as recorded
    inputs, _ = _read(bag)
    assert [raw for _, _, raw in topics["/camera/color/image_raw"]] == \
        [raw for _, _, raw in inputs["/camera/color/image_raw"]]

    frames = [json.loads(f.read_text()) for f in sorted((tmp_path / "out" / "frames").glob("*.json"))]
    n_checked = n_primary = 0
    for (log_t, arr, _), rec in zip(topics["/hands/mesh"], frames):
        stamp = T0 + rec["frame"] * 40_000_000
        assert rec["stamp_ns"] == stamp and log_t == stamp + 5_000_000  # the image's stamp / log time
        assert (arr.header.stamp.sec * 10 ** 9 + arr.header.stamp.nanosec, arr.header.frame_id) == (stamp, FRAME_ID)
        assert rec["intrinsics"] == {"fx": FX, "fy": FY, "cx": CX, "cy": CY, "assumed": False,
                                     "distortion_model": "plumb_bob", "distortion": [0.0] * 5}
        assert len(arr.hands) == len(rec["hands"])
        for h, r in zip(arr.hands, rec["hands"]):
            assert h.header.stamp == arr.header.stamp and h.header.frame_id == FRAME_ID
            assert h.side == {"left": 0, "right": 1}[r["side"]] and h.track_id == r["track_id"]
            assert h.primary is r["primary"]
            n_primary += h.primary
            assert h.score == pytest.approx(r["score"], abs=1e-6)
            for field, n in (("bbox", 4), ("keypoints_2d", 42), ("joints", 63), ("global_orient", 3),
                             ("hand_pose", 45), ("betas", 10)):
                got = np.asarray(getattr(h, field), np.float64)
                assert got.shape == (n,), field
                np.testing.assert_allclose(got, np.ravel(r[field]), atol=1e-5, rtol=1e-6, err_msg=field)
            p, q = h.wrist_pose.position, h.wrist_pose.orientation
            np.testing.assert_allclose([p.x, p.y, p.z], r["joints"][0], atol=1e-5)
            quats = np.asarray(h.joint_orientations, np.float64).reshape(21, 4)
            expected = np.asarray(r["joint_orientations"]).reshape(21, 4)
            same_sign = np.sign((quats * expected).sum(1))[:, None]   # q and -q: one rotation
            np.testing.assert_allclose(quats * same_sign, expected, atol=1e-5)
            np.testing.assert_allclose([q.x, q.y, q.z, q.w], quats[0], atol=1e-7)
            for field in ("fit_error", "reprojection_error"):
                got, want = float(getattr(h, field)), r[field]
                assert (np.isnan(got) if want is None else got == pytest.approx(want, abs=1e-5)), field
            mesh = trimesh.load(tmp_path / "out" / r["mesh_file"], process=False)
            np.testing.assert_array_equal(np.asarray(h.vertices, np.float32).reshape(-1, 3),
                                          np.asarray(mesh.vertices, np.float32))
            assert len(h.faces) == 0  # as the node with publish_faces false
            assert h.translation_source == SOURCES[r["translation_source"]] == 1  # the bag's CameraInfo
            assert h.hand_model == r["hand_model"]
            n_checked += 1
    assert n_checked >= 6 and n_primary == n_checked  # one hand per frame: its side's primary

    tf = topics["/tf"][-1][1]
    last = frames[-1]["hands"][0]
    names = {t.child_frame_id: t for t in tf.transforms}
    assert set(names) == {f"hand_{last['side']}/{j}" for j in JOINT_NAMES}
    wrist = names[f"hand_{last['side']}/wrist"]
    assert wrist.header.frame_id == FRAME_ID
    np.testing.assert_allclose([wrist.transform.translation.x, wrist.transform.translation.y,
                                wrist.transform.translation.z], last["joints"][0], atol=1e-5)
    markers = topics["/hands/markers"][-1][1].markers
    assert markers[0].action == 3 and {m.ns for m in markers[1:]} == {"hand_mesh", "hand_joints", "hand_skeleton",
                                                                       "hand_label"}


def test_compressed_db3_bag_and_folder_output(tmp_path, video_frames):
    """A SQLite bag of JPEG frames, opened by its .db3 file; output as a rosbag2 folder."""
    bag = write_bag(tmp_path / "jpeg_bag", _camera_messages(video_frames[:4], "/cam/image_raw/compressed", _jpeg,
                                                            "/cam/camera_info"), StoragePlugin.SQLITE3)
    db3 = next(bag.glob("*.db3"))
    out_dir = tmp_path / "out_bag"
    assert _run("--input", db3, "--output-bag", out_dir) == 0
    meta = yaml.safe_load((out_dir / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["storage_identifier"] == "mcap"
    hashes = {t["topic_metadata"]["name"]: t["topic_metadata"]["type_description_hash"]
              for t in meta["topics_with_message_count"]}
    assert hashes["/hands/mesh"] == _installed_hash("HandMeshArray")  # what a ROS 2 build computes
    topics, _ = _read(out_dir)
    assert set(topics) == {"/hands/mesh", "/tf", "/hands/markers"}
    hands = [h for _, arr, _ in topics["/hands/mesh"] for h in arr.hands]
    assert len(topics["/hands/mesh"]) == 4 and len(hands) >= 3
    assert all(h.side == 1 and h.translation_source == 1 for h in hands)  # a right hand, bag intrinsics
    # an existing output is an error, --overwrite replaces it
    assert _run("--input", db3, "--output-bag", out_dir) == 2
    assert _run("--input", db3, "--output-bag", out_dir, "--overwrite", "--max-frames", 1) == 0
    assert len(_read(out_dir)[0]["/hands/mesh"]) == 1


def test_video_input_to_output_bag_with_images(tmp_path, video_frames):
    video = tmp_path / "v.mp4"
    wr = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (640, 360))
    for f in video_frames[:3]:
        wr.write(f[:, :, ::-1])
    wr.release()
    out_bag = tmp_path / "v.mcap"
    assert _run("--input", video, "--output-bag", out_bag, "--bag-images", "--fx", FX, "--fy", FY,
                "--frame-id", "my_optical_frame") == 0
    topics, _ = _read(out_bag)
    stamps = [a.header.stamp.sec * 10 ** 9 + a.header.stamp.nanosec for _, a, _ in topics["/hands/mesh"]]
    assert len(stamps) == 3 and stamps[0] > 10 ** 18 and np.allclose(np.diff(stamps), 4e7, atol=1e3)
    info = topics["/camera_info"][0][1]
    assert (info.width, info.height, info.k[0], info.k[4]) == (640, 360, FX, FY)
    assert topics["/image"][0][1].header.frame_id == "my_optical_frame"


def _err(capsys):
    return capsys.readouterr().err


def test_bad_bags_are_clear_errors(tmp_path, video_frames, capsys):
    frames = video_frames[:2]
    # no image topic
    bag = write_bag(tmp_path / "no_image", [("/camera/color/camera_info", _camera_info(T0), T0)])
    assert _run("--input", bag, "--output-bag", tmp_path / "o1.mcap") == 2
    err = _err(capsys)
    assert "no sensor_msgs/Image or CompressedImage topic" in err and "/camera/color/camera_info" in err
    # two image topics: ambiguous, listed; --image-topic picks one; a wrong one is listed too
    bag = write_bag(tmp_path / "two", _camera_messages(frames) + _camera_messages(frames, "/camera/depth/image_raw",
                                                                                  info_topic=None))
    assert _run("--input", bag, "--output", tmp_path / "o2") == 2
    err = _err(capsys)
    assert "2 image topics" in err and "/camera/color/image_raw" in err and "/camera/depth/image_raw" in err
    src = BagFrameSource(bag, image_topic="/camera/color/image_raw")
    assert (src.camera_info_topic, len(src)) == ("/camera/color/camera_info", 2)
    with pytest.raises(InputError, match="--image-topic /nope is not in the bag; image topics of .*image_raw"):
        BagFrameSource(bag, image_topic="/nope")
    with pytest.raises(InputError, match="--camera-info-topic /camera/depth/image_raw is sensor_msgs/msg/Image"):
        BagFrameSource(bag, image_topic="/camera/color/image_raw", camera_info_topic="/camera/depth/image_raw")
    # truncated storage file
    good = write_bag(tmp_path / "good", _camera_messages(frames))
    mcap = next(good.glob("*.mcap"))
    cut = tmp_path / "cut.mcap"
    cut.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    assert _run("--input", cut, "--output-bag", tmp_path / "o3.mcap") == 2
    err = _err(capsys)
    assert f"cannot read bag {cut}" in err and "truncated" in err and "Traceback" not in err
    # topic options with a non-bag input
    assert _run("--input", tmp_path / "good" / "metadata.yaml", "--output", tmp_path / "o4",
                "--image-topic", "/x") == 2
    assert "need a rosbag2 input" in _err(capsys)


def test_unusable_messages_are_counted_or_an_error(tmp_path, video_frames, capsys):
    f = video_frames
    # every frame of an unknown encoding: nothing to process -> error naming the count and reason
    bag = write_bag(tmp_path / "yuv", [("/cam/image_raw", _image(x, T0 + k, "yuv422"), T0 + k) for k, x in
                                       enumerate(f[:3])])
    assert _run("--input", bag, "--output", tmp_path / "o1") == 2
    err = _err(capsys)
    assert "no usable frame on /cam/image_raw" in err and "3 x unsupported_encoding" in err
    assert "unsupported image encoding 'yuv422'" in err  # the first one is named
    # some bad messages among good ones: skipped and counted, the rest processed
    msgs = _camera_messages(f[:3], "/cam/image_raw/compressed", _jpeg, "/cam/camera_info")
    msgs += [("/cam/image_raw/compressed", _jpeg(f[3], T0 + 10 ** 9, truncate=True), T0 + 10 ** 9),
             ("/cam/camera_info", _camera_info(T0 + 10 ** 9), T0 + 10 ** 9)]
    msgs += [("/cam/image_raw/compressed", _jpeg(f[4], T0 + 2 * 10 ** 9), T0 + 2 * 10 ** 9),
             ("/cam/camera_info", _camera_info(T0 + 2 * 10 ** 9, 1280, 720), T0 + 2 * 10 ** 9)]
    bag = write_bag(tmp_path / "mixed", msgs)
    assert _run("--input", bag, "--output", tmp_path / "o2") == 0
    summary = json.loads((tmp_path / "o2" / "summary.json").read_text())
    assert summary["frames"] == 3 and summary["skipped"] == {"corrupt_compressed": 1, "camera_info_size": 1}
    err = _err(capsys)
    assert "is 640x360 but /cam/camera_info says 1280x720" in err and "corrupt or truncated JPEG" in err


def test_cli_never_shows_a_traceback_for_a_bad_bag(tmp_path):
    """The console script as a user runs it, on a bag folder whose storage file is cut."""
    bag = tmp_path / "bag"
    bag.mkdir()
    (bag / "metadata.yaml").write_text("rosbag2_bagfile_information:\n  version: 9\n")
    r = subprocess.run([sys.executable, "-m", "hand_mesh_ros.cli", "run", "--input", str(bag), "--output",
                        str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "cannot read bag" in r.stderr and "Traceback" not in r.stderr, r.stderr
    shutil.rmtree(bag)
