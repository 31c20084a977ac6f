"""sensor_msgs/Image <-> numpy, and the output messages built from pipeline hands."""
import array

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

pytest.importorskip("rclpy")
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Header  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from hand_mesh_ros.core.types import (JOINT_NAMES, JOINT_PARENTS, LEFT, RIGHT,  # noqa: E402
                                      TRANSLATION_INTRINSICS, Hand)
from hand_mesh_ros.ros import messages  # noqa: E402
from hand_mesh_ros.ros.image_conversion import (SUPPORTED_ENCODINGS, image_to_rgb,  # noqa: E402
                                                rgb_to_image)

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)


def _msg(pixels: np.ndarray, encoding: str, pad: int = 0, bigendian: int = 0) -> Image:
    h, w = pixels.shape[:2]
    row = pixels.reshape(h, -1).view(np.uint8) if pixels.dtype != np.uint8 else pixels.reshape(h, -1)
    padded = np.zeros((h, row.shape[1] + pad), np.uint8)
    padded[:, : row.shape[1]] = row
    padded[:, row.shape[1]:] = 0xAB  # garbage in the padding must not leak into the result
    m = Image(height=h, width=w, encoding=encoding, is_bigendian=bigendian, step=row.shape[1] + pad)
    m.data = padded.tobytes()
    return m


@pytest.mark.parametrize("pad", [0, 3])
def test_colour_encodings(pad):
    bgr = RGB[:, :, ::-1]
    alpha = np.full(RGB.shape[:2] + (1,), 9, np.uint8)
    cases = {
        "rgb8": RGB,
        "bgr8": bgr,
        "8UC3": bgr,
        "rgba8": np.concatenate([RGB, alpha], 2),
        "bgra8": np.concatenate([bgr, alpha], 2),
        "8UC4": np.concatenate([bgr, alpha], 2),
    }
    for enc, px in cases.items():
        out = image_to_rgb(_msg(np.ascontiguousarray(px), enc, pad))
        assert out.shape == (5, 7, 3) and out.dtype == np.uint8 and out.flags.c_contiguous, enc
        np.testing.assert_array_equal(out, RGB, err_msg=enc)


@pytest.mark.parametrize("enc", ["mono8", "8UC1"])
def test_mono8(enc):
    grey = RGB[:, :, 0].copy()
    out = image_to_rgb(_msg(grey, enc, pad=2))
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], grey)


@pytest.mark.parametrize("bigendian", [0, 1])
def test_mono16_byte_order(bigendian):
    grey16 = (RGB[:, :, 0].astype(np.uint16) << 8) | 0x7F
    px = grey16.astype(">u2" if bigendian else "<u2")
    out = image_to_rgb(_msg(px, "mono16", pad=1, bigendian=bigendian))
    np.testing.assert_array_equal(out[:, :, 1], RGB[:, :, 0])


def test_result_does_not_alias_message():
    m = _msg(RGB, "rgb8")
    out = image_to_rgb(m)
    out[:] = 0
    np.testing.assert_array_equal(image_to_rgb(m), RGB)


def test_real_message_data_buffer():
    """Image.data as rclpy delivers it (array.array('B'))."""
    m = _msg(RGB, "rgb8")
    m.data = array.array("B", m.data.tobytes() if hasattr(m.data, "tobytes") else bytes(m.data))
    np.testing.assert_array_equal(image_to_rgb(m), RGB)


def test_conversion_errors():
    with pytest.raises(ValueError, match="unsupported image encoding 'yuv422'.*rgb8"):
        image_to_rgb(_msg(RGB, "yuv422"))
    with pytest.raises(ValueError, match="empty image"):
        image_to_rgb(Image(height=0, width=7, encoding="rgb8", step=21))
    short = _msg(RGB, "rgb8")
    short.data = bytes(short.data)[:-1]
    with pytest.raises(ValueError, match="expected at least step\\*height"):
        image_to_rgb(short)
    bad_step = _msg(RGB, "rgb8")
    bad_step.step = 20
    with pytest.raises(ValueError, match="smaller than one row"):
        image_to_rgb(bad_step)
    assert set(SUPPORTED_ENCODINGS) >= {"rgb8", "bgr8", "mono8", "rgba8", "bgra8"}


def test_rgb_to_image_round_trip():
    hdr = Header(frame_id="cam_optical")
    hdr.stamp.sec, hdr.stamp.nanosec = 12, 345
    for enc in ("rgb8", "bgr8"):
        m = rgb_to_image(RGB, hdr, enc)
        assert (m.height, m.width, m.step, m.encoding) == (5, 7, 21, enc)
        assert m.header.frame_id == "cam_optical" and m.header.stamp.nanosec == 345
        np.testing.assert_array_equal(image_to_rgb(m), RGB)
    with pytest.raises(ValueError):
        rgb_to_image(RGB[:, :, :2].copy())
    with pytest.raises(ValueError):
        rgb_to_image(RGB.astype(np.float32))


# ---------------------------------------------------------------- output messages
def _hand(side: int, score: float, track_id: int, z: float = 0.5, n_verts: int = 30,
          primary: bool = False) -> Hand:
    rng = np.random.default_rng(track_id)
    joints = (rng.normal(0, 0.03, (21, 3)) + [0.0, 0.0, z]).astype(np.float32)
    rots = Rotation.random(21, random_state=track_id).as_matrix().astype(np.float32)
    return Hand(side=side, score=score, bbox=np.array([10, 20, 110, 140], np.float32),
                keypoints_2d=rng.uniform(0, 100, (21, 2)).astype(np.float32),
                global_orient=rng.normal(size=3).astype(np.float32),
                hand_pose=rng.normal(size=45).astype(np.float32),
                betas=rng.normal(size=10).astype(np.float32),
                transl=np.array([0, 0, z], np.float32),
                vertices=(rng.normal(0, 0.04, (n_verts, 3)) + [0, 0, z]).astype(np.float32),
                joints=joints, joint_rotations=rots, translation_source=TRANSLATION_INTRINSICS,
                hand_model="builtin", track_id=track_id, primary=primary)


FACES = np.array([[0, 1, 2], [2, 3, 4], [5, 6, 29]], np.int64)


def _faces_for(side):
    return FACES if side == RIGHT else FACES[:, ::-1]


def _header():
    h = Header(frame_id="camera_color_optical_frame")
    h.stamp.sec, h.stamp.nanosec = 1700000000, 123456789
    return h


def test_hand_mesh_array_fields():
    hands = [_hand(RIGHT, 0.9, 3), _hand(LEFT, 0.8, 4)]
    hdr = _header()
    msg = messages.hand_mesh_array(hands, hdr, None)
    assert msg.header.stamp.sec == 1700000000 and msg.header.stamp.nanosec == 123456789
    assert msg.header.frame_id == "camera_color_optical_frame"
    assert len(msg.hands) == 2
    for h, m in zip(hands, msg.hands):
        assert m.header.stamp.nanosec == 123456789 and m.header.frame_id == hdr.frame_id
        assert m.side == h.side and m.track_id == h.track_id
        assert m.score == pytest.approx(h.score)
        assert isinstance(m.vertices, array.array) and m.vertices.typecode == "f"
        np.testing.assert_array_equal(np.asarray(m.vertices, np.float32).reshape(-1, 3), h.vertices)
        np.testing.assert_array_equal(np.asarray(m.joints).reshape(21, 3), h.joints)
        np.testing.assert_array_equal(np.asarray(m.keypoints_2d).reshape(21, 2), h.keypoints_2d)
        np.testing.assert_array_equal(m.bbox, h.bbox)
        np.testing.assert_array_equal(m.hand_pose, h.hand_pose)
        np.testing.assert_array_equal(m.betas, h.betas)
        np.testing.assert_array_equal(m.global_orient, h.global_orient)
        assert len(m.faces) == 0
        p = m.wrist_pose.position
        np.testing.assert_allclose([p.x, p.y, p.z], h.joints[0], rtol=1e-6)
        o = m.wrist_pose.orientation
        np.testing.assert_allclose(Rotation.from_quat([o.x, o.y, o.z, o.w]).as_matrix(),
                                   h.joint_rotations[0], atol=1e-5)
        assert m.translation_source == TRANSLATION_INTRINSICS and m.hand_model == "builtin"


def test_faces_only_when_asked_and_per_side_winding():
    hands = [_hand(RIGHT, 0.9, 3), _hand(LEFT, 0.8, 4)]
    msg = messages.hand_mesh_array(hands, _header(), _faces_for)
    assert msg.hands[0].faces.typecode == "I"
    np.testing.assert_array_equal(np.asarray(msg.hands[0].faces).reshape(-1, 3), FACES)
    np.testing.assert_array_equal(np.asarray(msg.hands[1].faces).reshape(-1, 3), FACES[:, ::-1])


def test_empty_hand_list_still_gives_a_message():
    msg = messages.hand_mesh_array([], _header(), None)
    assert msg.hands == [] and msg.header.stamp.sec == 1700000000
    markers = messages.marker_array([], _header(), _faces_for).markers
    assert len(markers) == 1 and markers[0].action == Marker.DELETEALL
    assert messages.joint_transforms([], _header()) == []


def test_hand_mesh_message_serializes():
    from hand_mesh_msgs.msg import HandMeshArray
    from rclpy.serialization import deserialize_message, serialize_message

    msg = messages.hand_mesh_array([_hand(RIGHT, 0.9, 3)], _header(), _faces_for)
    back = deserialize_message(serialize_message(msg), HandMeshArray)
    np.testing.assert_array_equal(np.asarray(back.hands[0].vertices), np.asarray(msg.hands[0].vertices))
    assert list(back.hands[0].faces) == list(msg.hands[0].faces)


def test_marker_array_layout():
    hands = [_hand(RIGHT, 0.97, 3), _hand(LEFT, 0.8, 4)]
    ma = messages.marker_array(hands, _header(), _faces_for).markers
    assert ma[0].action == Marker.DELETEALL
    assert len(ma) == 1 + 4 * 2
    by = {(m.ns, m.id): m for m in ma[1:]}
    for i, h in enumerate(hands):
        mesh, joints = by[("hand_mesh", i)], by[("hand_joints", i)]
        skel, label = by[("hand_skeleton", i)], by[("hand_label", i)]
        assert mesh.type == Marker.TRIANGLE_LIST and len(mesh.points) == FACES.size
        tri0 = _faces_for(h.side)[0]
        np.testing.assert_allclose([[p.x, p.y, p.z] for p in mesh.points[:3]], h.vertices[tri0], rtol=1e-6)
        assert joints.type == Marker.SPHERE_LIST and len(joints.points) == 21
        assert skel.type == Marker.LINE_LIST and len(skel.points) == 2 * 20
        # each line joins a joint and its parent
        a, b = skel.points[0], skel.points[1]
        parent, child = JOINT_PARENTS[1], 1
        np.testing.assert_allclose([a.x, a.y, a.z], h.joints[parent], rtol=1e-6)
        np.testing.assert_allclose([b.x, b.y, b.z], h.joints[child], rtol=1e-6)
        assert label.type == Marker.TEXT_VIEW_FACING
        for m in (mesh, joints, skel, label):
            assert m.header.stamp.nanosec == 123456789 and m.header.frame_id == "camera_color_optical_frame"
            assert m.action == Marker.ADD
            expect = messages.RIGHT_COLOR if h.side == RIGHT else messages.LEFT_COLOR
            assert (m.color.r, m.color.g, m.color.b) == pytest.approx(expect[:3])
    assert by[("hand_label", 0)].text == "right #3 0.97"
    # survives serialization (mesh points share Point objects between triangles)
    from rclpy.serialization import deserialize_message, serialize_message
    from visualization_msgs.msg import MarkerArray
    back = deserialize_message(serialize_message(MarkerArray(markers=ma)), MarkerArray).markers
    pts = lambda m: [(p.x, p.y, p.z) for p in m.points]  # noqa: E731
    assert pts(back[1]) == pts(ma[1]) and len(back) == len(ma)
    assert by[("hand_label", 1)].text == "left #4 0.80"


def test_tf_names_and_poses():
    hands = [_hand(RIGHT, 0.9, 8), _hand(RIGHT, 0.7, 5, primary=True), _hand(LEFT, 0.6, 2, primary=True)]
    tfs = messages.joint_transforms(hands, _header(), "hand_")
    assert len(tfs) == 3 * 21
    names = [t.child_frame_id for t in tfs]
    # the primary right track (5) is hand_right whatever the scores, the other one hand_right_8
    assert names[:21] == [f"hand_right_8/{j}" for j in JOINT_NAMES]
    assert names[21:42] == [f"hand_right/{j}" for j in JOINT_NAMES]
    assert names[42:] == [f"hand_left/{j}" for j in JOINT_NAMES]
    assert "hand_right/index_tip" in names
    for k, t in enumerate(tfs):
        h, j = hands[k // 21], k % 21
        assert t.header.frame_id == "camera_color_optical_frame"
        assert (t.header.stamp.sec, t.header.stamp.nanosec) == (1700000000, 123456789)
        tr, r = t.transform.translation, t.transform.rotation
        np.testing.assert_allclose([tr.x, tr.y, tr.z], h.joints[j], rtol=1e-6)
        np.testing.assert_allclose(Rotation.from_quat([r.x, r.y, r.z, r.w]).as_matrix(),
                                   h.joint_rotations[j], atol=1e-5)
    assert messages.joint_transforms(hands[1:2], _header(), "my/")[0].child_frame_id == "my/right/wrist"


def test_tf_skips_non_finite_hand():
    bad = _hand(RIGHT, 0.9, 1)
    bad.joints[3] = np.nan
    assert messages.joint_transforms([bad, _hand(LEFT, 0.5, 2)], _header()) != []
    assert len(messages.joint_transforms([bad, _hand(LEFT, 0.5, 2)], _header())) == 21


def test_tf_names_follow_the_primary_flag_only():
    """No primary hand of a side: no ``hand_<side>`` frames (the name never jumps to another
    hand); two flagged of one side (not from one tracker): the first keeps the name."""
    names = messages.hand_frame_prefixes([_hand(RIGHT, 0.9, 3), _hand(LEFT, 0.8, 4)])
    assert names == ["hand_right_3", "hand_left_4"]
    names = messages.hand_frame_prefixes([_hand(RIGHT, 0.9, 3, primary=True), _hand(RIGHT, 0.8, 4, primary=True),
                                          _hand(LEFT, 0.8, 6, primary=True)], "h_")
    assert names == ["h_right", "h_right_4", "h_left"]


def test_hand_mesh_primary_matches_the_tf_names():
    """``HandMesh.primary`` is true exactly for the hands whose TF frames are
    ``<prefix><side>``: one per side at most, none for a side without a primary track."""
    hands = [_hand(RIGHT, 0.9, 8), _hand(RIGHT, 0.7, 5, primary=True), _hand(RIGHT, 0.6, 9, primary=True),
             _hand(LEFT, 0.6, 2), _hand(LEFT, 0.5, 3, primary=True)]
    msg = messages.hand_mesh_array(hands, _header())
    names = messages.hand_frame_prefixes(hands, "hand_")
    assert [m.primary for m in msg.hands] == [False, True, False, False, True]
    assert [n in ("hand_right", "hand_left") for n in names] == [m.primary for m in msg.hands]
    assert [m.primary for m in messages.hand_mesh_array(hands[:1] + hands[3:4], _header()).hands] == [False, False]
