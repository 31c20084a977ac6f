"""The parts of ``hand-mesh run`` (``hand_mesh_ros.offline``): one output stamp per frame,
the intrinsics of each frame, and every sink's files finished when a run stops mid-way."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from hand_mesh_ros import cli
from hand_mesh_ros.bag import BagFrameSource
from hand_mesh_ros.core.hand_model import load_hand_model
from hand_mesh_ros.frames import Frame, InputError
from hand_mesh_ros.offline.inputs import FrameIntrinsics
from hand_mesh_ros.offline.sinks import BagSink, Sinks
from hand_mesh_ros.offline.stamps import Stamp, StampClock
from test_bag import CX, CY, FX, FY, T0, _camera_info, _image, video_frames, write_bag  # noqa: F401 (fixture)

IMAGE = np.zeros((360, 640, 3), np.uint8)


def test_stamp_clock_gives_each_frame_one_stamp():
    """A frame's own stamp is kept (in its own optical frame if it names one); a frame with
    none is stamped only for a sink that writes messages: start + video time, images 0.1 s
    apart; a stamp of 0 is none (it would mean "latest" to tf2)."""
    own = Frame(4, IMAGE, time_s=0.16, stamp_ns=T0 + 123, frame_id="cam_color_optical_frame")
    for synthesize in (False, True):
        clock = StampClock("my_optical_frame", synthesize=synthesize, start_ns=T0)
        assert clock(own) == Stamp(T0 + 123, "cam_color_optical_frame")
        assert clock(Frame(0, IMAGE, stamp_ns=T0 + 5)) == Stamp(T0 + 5, "my_optical_frame")
    quiet = StampClock("my_optical_frame", synthesize=False, start_ns=T0)
    assert quiet(Frame(3, IMAGE, time_s=0.12)) is None and quiet(Frame(3, IMAGE, time_s=0.12, stamp_ns=0)) is None
    clock = StampClock("my_optical_frame", synthesize=True, start_ns=T0)
    assert clock(Frame(3, IMAGE, time_s=0.12)) == Stamp(T0 + 120_000_000, "my_optical_frame")
    assert clock(Frame(3, IMAGE, time_s=0.12, stamp_ns=0)) == Stamp(T0 + 120_000_000, "my_optical_frame")
    assert clock(Frame(3, IMAGE, file="c.png")) == Stamp(T0 + 300_000_000, "my_optical_frame")
    header = Stamp(1_700_000_000_123_456_789, "f").header()
    assert (header.stamp.sec, header.stamp.nanosec, header.frame_id) == (1_700_000_000, 123_456_789, "f")


def test_frame_intrinsics_per_image_size_then_the_frames_camera_info():
    large = np.zeros((480, 800, 3), np.uint8)
    given = FrameIntrinsics(fx=500.0)
    a, b = given(Frame(0, IMAGE)), given(Frame(1, large))
    assert (a.fx, a.fy, a.cx, a.cy, a.width, a.height, a.assumed) == (500, 500, 320, 180, 640, 360, False)
    assert (b.fx, b.cx, b.cy, b.width, b.height) == (500, 400, 240, 800, 480)
    with_info = Frame(0, IMAGE, camera_info=_camera_info(T0))  # a bag's CameraInfo, 640x360
    k = FrameIntrinsics()(with_info)
    assert (k.fx, k.fy, k.cx, k.cy, k.assumed, k.distortion_model) == (FX, FY, CX, CY, False, "plumb_bob")
    assert given(with_info).fx == 500  # the flags win over the bag's
    assert FrameIntrinsics()(Frame(0, IMAGE)) is None  # the pipeline assumes them
    with pytest.raises(InputError, match="--cx/--cy given without --fx/--fy"):
        FrameIntrinsics(cx=3.0)(Frame(0, IMAGE))


def test_bag_source_without_a_usable_frame_is_an_error(tmp_path, video_frames):
    bag = write_bag(tmp_path / "yuv", [("/cam/image_raw", _image(x, T0 + k, "yuv422"), T0 + k)
                                       for k, x in enumerate(video_frames[:2])])
    source = BagFrameSource(bag)
    with pytest.raises(InputError, match=r"no usable frame on /cam/image_raw of .*yuv: skipped 2 x unsupported_enc"):
        list(source)
    assert source.summary() == {"image_topic": "/cam/image_raw", "camera_info_topic": None,
                                "skipped": {"unsupported_encoding": 2}}


def _bag_messages(path: Path):
    with AnyReader([path]) as reader:
        return [(c.topic, reader.deserialize(raw, c.msgtype)) for c, _, raw in reader.messages()]


def _finished_bag(path: Path) -> list:
    """The messages of an MCAP output bag, after checking it was moved into place."""
    assert path.is_file() and not list(path.parent.glob(f".{path.name}.partial"))
    return _bag_messages(path)


def test_every_sink_is_closed_when_one_fails_or_cannot_be_made(tmp_path):
    faces_for = load_hand_model(None).faces_for

    class CloseFails:  # a sink whose files cannot be finished (e.g. a full disk)
        needs_stamp = False

        def write(self, frame, result, stamp):
            pass

        def close(self):
            raise OSError("No space left on device")

    sinks = Sinks([CloseFails(), BagSink(tmp_path / "a.mcap", False, "hand_", faces_for)])
    assert sinks.needs_stamp
    with pytest.raises(OSError, match="No space left"):
        sinks.close()
    assert _finished_bag(tmp_path / "a.mcap") == []  # closed all the same: a valid, empty bag
    with pytest.raises(InputError, match="output bag exists"):
        Sinks.open([lambda: BagSink(tmp_path / "b.mcap", False, "hand_", faces_for),
                    lambda: BagSink(tmp_path / "a.mcap", False, "hand_", faces_for)])
    assert _finished_bag(tmp_path / "b.mcap") == []


def test_a_run_stopped_mid_way_leaves_every_sinks_files_finished(hands_data, tmp_path, capsys):
    """The depth input ends after 3 of 5 colour frames: exit 2 naming it, and the frames
    processed are all written: JSON, meshes, overlays, a playable overlay.mp4 and a valid
    bag whose stamps are the JSON's."""
    video = hands_data / "mediapipe_samples" / "hand_landmarker_test_video.mp4"
    depth = tmp_path / "depth"
    depth.mkdir()
    for i in range(3):
        cv2.imwrite(str(depth / f"{i:06d}.png"), np.full((360, 640), 900, np.uint16))
    out, out_bag = tmp_path / "out", tmp_path / "out.mcap"
    assert cli.main(["run", "--input", str(video), "--output", str(out), "--output-bag", str(out_bag), "--fx", "520",
                     "--depth", str(depth), "--max-frames", "5"]) == 2
    assert f"{depth} ends before colour frame 3" in capsys.readouterr().err
    frames = [json.loads(p.read_text()) for p in sorted((out / "frames").glob("*.json"))]
    assert [f["frame"] for f in frames] == [0, 1, 2] and all(len(f["hands"]) == 1 for f in frames)
    assert [p.name for p in sorted((out / "meshes").glob("*.ply"))] == [Path(f["hands"][0]["mesh_file"]).name
                                                                         for f in frames]
    assert len(list((out / "overlay").glob("*.png"))) == 3
    video_out = cv2.VideoCapture(str(out / "overlay.mp4"))
    assert video_out.isOpened() and int(video_out.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    meshes = [msg for topic, msg in _finished_bag(out_bag) if topic == "/hands/mesh"]
    assert [m.header.stamp.sec * 10 ** 9 + m.header.stamp.nanosec for m in meshes] == [f["stamp_ns"] for f in frames]
    assert not (out / "summary.json").exists()  # a run that failed has no summary
