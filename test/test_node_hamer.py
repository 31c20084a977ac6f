"""hand_mesh_node with ``regressor:=hamer`` (the tiny golden checkpoint) on a real ROS graph:
camera publisher and node as separate processes, real hand images, checked by a listener.

The tiny checkpoint has test weights, so poses are not meaningful; what a user relies on
and what is checked: the node starts from the user's files, publishes one HandMeshArray per
image with MANO meshes (778 vertices, ``hand_model == "mano"``) on the detected hands' side,
placed in front of the camera with the real intrinsics over the hand in the image, and TF.
"""
import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

from hand_mesh_ros.core.hamer.preprocess import crop_box  # noqa: E402
from hand_mesh_ros.core.types import JOINT_NAMES, RIGHT  # noqa: E402
from test_node import FRAME, _ns, _run_camera, _snapshot, _wait, node_process  # noqa: E402

FX, FY, CX, CY = 1500.0, 1520.0, 955.0, 645.0  # thumbs-up.png is 1920x1280


@pytest.fixture(scope="module")
def hamer_graph(tmp_path_factory):
    from conftest import GOLDEN_HAMER
    if not GOLDEN_HAMER.exists():
        pytest.skip(f"test data not found: {GOLDEN_HAMER}")
    with node_process(tmp_path_factory.mktemp("node") / "node.log", "regressor:=hamer",
                      f"checkpoint:={GOLDEN_HAMER / 'tiny_hamer.ckpt'}", "input_reliability:=reliable",
                      "batch_size:=4", ready_timeout=90) as g:
        yield g


def test_hamer_node_publishes_mano_meshes_over_the_hand(hamer_graph, hands_data, tmp_path):
    listener, proc, env, log = hamer_graph
    src = hands_data / "mediapipe_samples" / "thumbs-up.png"
    (tmp_path / "a.png").symlink_to(src)
    t0 = time.time_ns()
    _run_camera(env, tmp_path, "--rate", 0.5, "--frame-id", FRAME,
                "--fx", FX, "--fy", FY, "--cx", CX, "--cy", CY)
    imgs, *_ = _snapshot(listener, t0)
    assert len(imgs) == 1
    stamp = _ns(imgs[0].header.stamp)
    _wait(lambda: any(_ns(m.header.stamp) == stamp for m in list(listener.meshes)), 60,
          "the HandMeshArray of the image", proc, log)
    _wait(lambda: any(_ns(t.header.stamp) == stamp for m in list(listener.tf) for t in m.transforms), 10,
          "its /tf frames", proc, log)
    _, meshes, _, tfs = _snapshot(listener, t0)
    (msg,) = [m for m in meshes if _ns(m.header.stamp) == stamp]
    assert len(msg.hands) == 1
    h = msg.hands[0]
    assert h.side == RIGHT and h.hand_model == "mano" and h.translation_source == 1
    v = np.asarray(h.vertices, np.float64).reshape(-1, 3)
    assert v.shape == (778, 3) and np.isfinite(v).all() and (v[:, 2] > 0).all()
    # the mesh projects into the square crop HaMeR looked at (twice the detector's box):
    # the crop camera, turned into a metric translation with this camera's intrinsics, puts
    # the model there (test weights: the pose is arbitrary, the placement is not)
    u = FX * v[:, 0] / v[:, 2] + CX
    w = FY * v[:, 1] / v[:, 2] + CY
    center, size = crop_box(np.asarray(h.bbox, np.float64)[None])
    (cu, cv), half = center[0], size[0] / 2
    print(f"mesh projection u {u.min():.0f}..{u.max():.0f}, v {w.min():.0f}..{w.max():.0f} px; crop centre "
          f"({cu:.0f}, {cv:.0f}) +- {half:.0f} px; depth {v[:, 2].mean():.2f} m")
    assert (np.abs(u - cu) < half).all() and (np.abs(w - cv) < half).all()
    assert np.hypot(u.max() - u.min(), w.max() - w.min()) > 0.2 * size[0]
    names = {t.child_frame_id for t in tfs if _ns(t.header.stamp) == stamp}
    assert names == {f"hand_right/{j}" for j in JOINT_NAMES}
    assert proc.poll() is None and "ready: hand model 'mano'" in log.read_text()
