"""Bone-aligned joint frames (core/joint_frames.py): the convention of the README's
"Joint frames" table, for both hands, and frames that turn with the fingers."""
import cv2
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from hand_mesh_ros.core.hand_model import load_hand_model
from hand_mesh_ros.core.joint_frames import back_normal, joint_frames, rest_frames
from hand_mesh_ros.core.kinematics import JointKinematics
from hand_mesh_ros.core.pipeline import HandMeshPipeline, PipelineConfig
from hand_mesh_ros.core.types import JOINT_NAMES, LEFT, RIGHT, CameraIntrinsics

#: OpenPose joints whose bone ends at another joint (not the tips, not the wrist)
BONE_JOINTS = [j for j in range(1, 21) if j % 4 != 0]


@pytest.fixture(scope="module")
def model():
    return load_hand_model(None)


@pytest.fixture(scope="module")
def kin(model):
    return JointKinematics(model)


def _posed(model, kin, side, global_orient, hand_pose=None):
    """Joints (21, 3) and frames (21, 3, 3) of one hand, as the pipeline makes them."""
    hp = np.zeros(45) if hand_pose is None else hand_pose
    with torch.no_grad():
        out = model(torch.tensor(global_orient[None]).float(), torch.tensor(hp[None]).float(),
                    torch.zeros(1, 10), torch.tensor([side == RIGHT]))
    sides = np.array([side])
    frames = joint_frames(out.joint_rotations.numpy(), kin.rest_keypoints(np.zeros((1, 10)), sides), sides)
    return out.joints[0].numpy().astype(np.float64), frames[0].astype(np.float64)


def _facing_camera(kin, side):
    """global_orient of a flat hand, palm towards the camera, fingers up (-y in the optical
    frame): the rest wrist frame (x to the fingers, z out of the back) turned onto
    x = (0, -1, 0), z = (0, 0, 1)."""
    rest = kin.rest_keypoints(np.zeros((1, 10)), np.array([side]))
    C = rest_frames(rest, np.array([side]))[0, 0]
    target = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # columns x, y, z
    return Rotation.from_matrix(target @ C.T).as_rotvec()


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@pytest.mark.parametrize("side", [RIGHT, LEFT])
def test_flat_hand_facing_camera(model, kin, side):
    joints, F = _posed(model, kin, side, _facing_camera(kin, side))
    # right-handed orthonormal frames
    assert np.allclose(F.transpose(0, 2, 1) @ F, np.eye(3), atol=1e-5)
    assert np.allclose(np.linalg.det(F), 1.0, atol=1e-5)
    x, y, z = F[..., 0], F[..., 1], F[..., 2]
    # the wrist: x towards the middle MCP (up), z out of the back (away from the camera),
    # y = z x x towards the image right, for both hands
    np.testing.assert_allclose(x[0], [0, -1, 0], atol=1e-5)
    np.testing.assert_allclose(z[0], [0, 0, 1], atol=1e-5)
    np.testing.assert_allclose(y[0], [1, 0, 0], atol=1e-5)
    # anatomy, independent of the frame code: palm to the camera, fingers up, a right
    # hand's thumb is on the image right (y points to the thumb), a left hand's on the left
    thumb_right = joints[4, 0] > joints[20, 0]
    assert thumb_right == (side == RIGHT)
    # every finger joint: x along its bone, z out of the back of the flat hand
    for j in BONE_JOINTS:
        bone = _unit(joints[j + 1] - joints[j])
        assert x[j] @ bone > 0.9999, JOINT_NAMES[j]
    for j in range(5, 21):           # the four fingers (the thumb's back faces sideways)
        assert z[j] @ [0, 0, 1] > 0.95, JOINT_NAMES[j]
    # fingertips continue the last bone
    for tip in (4, 8, 12, 16, 20):
        assert x[tip] @ _unit(joints[tip] - joints[tip - 1]) > 0.999


@pytest.mark.parametrize("side", [RIGHT, LEFT])
def test_frames_turn_with_the_fingers(model, kin, side):
    """Flexing the index MCP about its own y axis turns the index frames by that angle and
    curls the finger towards the palm (-z); the other fingers' frames stay."""
    go = _facing_camera(kin, side)
    joints0, F0 = _posed(model, kin, side, go)
    rest = kin.rest_keypoints(np.zeros((1, 10)), np.array([side]))
    y_rest = rest_frames(rest, np.array([side]))[0, 5, :, 1]   # index MCP's y at rest
    angle = 0.8
    hp = np.zeros(45)
    hp[0:3] = angle * y_rest            # MANO joint 1 = index MCP, rest-aligned local axes
    joints1, F1 = _posed(model, kin, side, go, hp)
    for j in (5, 6, 7, 8):             # index MCP .. tip turn by the flexion angle
        cos = np.clip(F0[j, :, 0] @ F1[j, :, 0], -1, 1)
        assert abs(np.arccos(cos) - angle) < 1e-3, JOINT_NAMES[j]
        # about the MCP's y (exactly for the MCP; its children's y differ by their rest bend)
        assert F1[j, :, 1] @ F0[j, :, 1] > (0.9999 if j == 5 else 0.99)
    assert (joints1[8] - joints1[5]) @ F0[5, :, 2] < -0.02   # the tip went to the palm side
    np.testing.assert_allclose(F1[9:], F0[9:], atol=1e-6)    # other fingers unchanged
    for j in (5, 6, 7):
        assert F1[j, :, 0] @ _unit(joints1[j + 1] - joints1[j]) > 0.9999


def test_back_normal_sides():
    """f x u for a right hand, u x f for a left one (the left is the x-mirror)."""
    kp = np.zeros((2, 21, 3))
    kp[:, 9] = [0, -1, 0]                     # middle MCP up
    kp[0, 5], kp[0, 17] = [1, -1, 0], [-1, -1, 0]   # right hand, palm to the camera: index right
    kp[1] = kp[0] * [-1, 1, 1]                # its mirror: a left hand
    np.testing.assert_allclose(back_normal(kp, np.array([RIGHT, LEFT])), [[0, 0, 1], [0, 0, 1]], atol=1e-12)


def test_bad_arguments(kin):
    rest = kin.rest_keypoints(np.zeros((1, 10)), np.array([1]))
    with pytest.raises(ValueError, match="LEFT"):
        joint_frames(np.tile(np.eye(3), (1, 21, 1, 1)), rest, np.array([2]))
    with pytest.raises(ValueError, match=r"\(B,21,3,3\)"):
        joint_frames(np.tile(np.eye(3), (1, 20, 1, 1)), rest, np.array([1]))


def test_pipeline_frames_follow_the_published_joints(hands_data):
    """On a real photo (two hands), the published frames are bone-aligned with the
    published joints and their z is the back of each published hand."""
    bgr = cv2.imread(str(hands_data / "hamer_example_data/test5.jpg"))
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    pipe = HandMeshPipeline(PipelineConfig(static_image_mode=True))
    res = pipe.process(rgb, CameraIntrinsics(1400.0, 1400.0, w / 2, h / 2, w, h))
    pipe.close()
    assert len(res.hands) == 2
    for hand in res.hands:
        F = hand.joint_rotations.astype(np.float64)
        J = hand.joints.astype(np.float64)
        assert np.allclose(np.linalg.det(F), 1.0, atol=1e-4)
        for j in BONE_JOINTS:
            assert F[j, :, 0] @ _unit(J[j + 1] - J[j]) > 0.999, JOINT_NAMES[j]
        assert F[0, :, 0] @ _unit(J[9] - J[0]) > 0.999
        assert F[0, :, 2] @ back_normal(J[None], np.array([hand.side]))[0] > 0.9
