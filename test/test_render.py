"""Tests of hand_mesh_ros.core.render on synthetic meshes with known projections."""

import numpy as np
import pytest
import trimesh

from hand_mesh_ros.core import render
from hand_mesh_ros.core.camera import project
from hand_mesh_ros.core.render import LEFT_RGB, RIGHT_RGB, render_overlay
from hand_mesh_ros.core.types import LEFT, RIGHT, TRANSLATION_INTRINSICS, CameraIntrinsics, Hand

W, H = 640, 480
K = CameraIntrinsics(fx=500.0, fy=500.0, cx=320.0, cy=240.0, width=W, height=H)
GRAY = 100


def make_hand(mesh: trimesh.Trimesh, side=RIGHT, track_id=1, score=0.9, joints=None) -> Hand:
    """A Hand whose 'mesh' is any trimesh (outward winding for the right side)."""
    verts = np.asarray(mesh.vertices, np.float32)
    if joints is None:
        joints = np.repeat(verts.mean(axis=0, keepdims=True), 21, axis=0)
    uv = project(verts, K)
    bbox = np.array([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()], np.float32)
    return Hand(
        side=side, score=score, bbox=bbox, keypoints_2d=np.zeros((21, 2), np.float32),
        global_orient=np.zeros(3, np.float32), hand_pose=np.zeros(45, np.float32),
        betas=np.zeros(10, np.float32), transl=np.zeros(3, np.float32), vertices=verts,
        joints=np.asarray(joints, np.float32), joint_rotations=np.tile(np.eye(3, dtype=np.float32), (21, 1, 1)),
        translation_source=TRANSLATION_INTRINSICS, hand_model="builtin", track_id=track_id,
    )


def box(center, size=0.2) -> trimesh.Trimesh:
    return trimesh.creation.box(extents=(size, size, size), transform=trimesh.transformations.translation_matrix(center))


def mirrored(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """The mesh reflected in the plane x = its centre's x, faces kept: like a left MANO hand
    (mirrored right-hand vertices), its outward winding is the reversed face list."""
    v = np.array(mesh.vertices, np.float64)
    cx = v[:, 0].mean()
    v[:, 0] = 2 * cx - v[:, 0]
    return trimesh.Trimesh(v, np.asarray(mesh.faces), process=False)


def faces_lookup(*hands_and_meshes):
    """faces_for built from the meshes: right = mesh winding, left = reversed (as HandModel)."""
    faces = np.asarray(hands_and_meshes[0].faces, np.int64)
    return lambda side: faces if side == RIGHT else faces[:, ::-1]


def gray_image():
    return np.full((H, W, 3), GRAY, np.uint8)


def changed(a, b):
    return np.any(a != b, axis=2)


def test_empty_hands_returns_unchanged_copy():
    img = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    out = render_overlay(img, [], K, lambda s: np.zeros((0, 3), np.int64))
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert np.array_equal(out, img)
    assert out is not img


def test_dtype_shape_and_input_untouched():
    img = gray_image()
    mesh = box((0.0, 0.0, 1.0))
    out = render_overlay(img, [make_hand(mesh)], K, faces_lookup(mesh))
    assert out.dtype == np.uint8 and out.shape == (H, W, 3)
    assert np.all(img == GRAY), "input image must not be modified"
    assert changed(out, img).any()


def test_bad_image_raises():
    with pytest.raises(ValueError):
        render_overlay(np.zeros((H, W), np.uint8), [], K, lambda s: None)
    with pytest.raises(ValueError):
        render_overlay(np.zeros((H, W, 3), np.float32), [], K, lambda s: None)


def test_box_covers_exactly_its_projection():
    # A cube centred on the optical axis: only its front face (z = 0.9 m) is visible and
    # it projects to the square 320 +- 500 * 0.1 / 0.9 px (cx, cy = 320, 240).
    img = gray_image()
    mesh = box((0.0, 0.0, 1.0))
    out = render_overlay(img, [make_hand(mesh)], K, faces_lookup(mesh), alpha=0.7,
                         draw_skeleton=False, draw_label=False)
    half = 500.0 * 0.1 / 0.9
    u0, u1, v0, v1 = 320 - half, 320 + half, 240 - half, 240 + half
    cols = np.arange(W) + 0.5  # pixel centres
    rows = np.arange(H) + 0.5
    inside = ((cols[None, :] > u0 + 1) & (cols[None, :] < u1 - 1) & (rows[:, None] > v0 + 1) & (rows[:, None] < v1 - 1))
    outside = ~((cols[None, :] > u0 - 1) & (cols[None, :] < u1 + 1) & (rows[:, None] > v0 - 1) & (rows[:, None] < v1 + 1))
    diff = changed(out, img)
    assert diff[inside].all(), "pixels where the mesh projects must be drawn"
    assert not diff[outside].any(), "pixels away from the projection must stay untouched"
    # Head-on face near the axis: Lambert ~1, so the colour is ~ alpha * RIGHT + (1 - alpha) * gray.
    expect = 0.7 * np.array(RIGHT_RGB) + 0.3 * GRAY
    assert np.allclose(out[240, 320], expect, atol=3)


def test_only_front_faces_survive_culling():
    mesh = box((0.0, 0.0, 1.0))
    tri, shade, _ = render._visible_triangles([make_hand(mesh)], faces_lookup(mesh))
    assert len(tri) == 2  # the two triangles of the face at z = 0.9
    assert np.allclose(tri[:, :, 2], 0.9)
    assert np.all(shade > 0.95)
    # Same mesh as a left hand with the left winding (reversed faces) culls identically.
    left = mirrored(mesh)
    tri_l, _, _ = render._visible_triangles([make_hand(left, side=LEFT)], faces_lookup(mesh))
    assert len(tri_l) == 2
    assert np.allclose(tri_l[:, :, 2], 0.9)
    # Wrong winding (right faces used for a left hand): the back face is kept instead.
    right_faces = np.asarray(mesh.faces)
    tri_w, _, _ = render._visible_triangles([make_hand(left, side=LEFT)], lambda s: right_faces)
    # (inside-out: the far face and the inner side walls face the camera, the near face not)
    assert not np.any(np.all(np.isclose(tri_w[:, :, 2], 0.9), axis=1))
    assert np.sum(np.all(np.isclose(tri_w[:, :, 2], 1.1), axis=1)) == 2


@pytest.mark.parametrize("near_first", [True, False])
def test_nearer_triangles_win_across_hands(near_first):
    far = box((0.0, 0.0, 1.0), size=0.2)     # right hand (blue), behind
    near = box((0.05, 0.0, 0.5), size=0.05)  # left hand (orange), in front, overlapping
    hands = [make_hand(far, RIGHT, 1), make_hand(mirrored(near), LEFT, 2)]
    if near_first:
        hands = hands[::-1]
    faces = np.asarray(far.faces, np.int64)  # both boxes share the triangulation
    out = render_overlay(gray_image(), hands, K, lambda s: faces if s == RIGHT else faces[:, ::-1],
                         alpha=1.0, draw_skeleton=False, draw_label=False)
    u_near = int(320 + 500 * 0.05 / 0.475)  # centre of the near box's front face
    px = out[240, u_near].astype(float)
    assert px[0] > px[2], f"near (orange, left) hand must be on top, got {px}"
    # Where only the far box is: blue.
    px_far = out[240, 320 - 40].astype(float)
    assert px_far[2] > px_far[0]
    assert np.allclose(out[240, u_near], LEFT_RGB, atol=12)


def test_nearer_triangles_win_within_one_hand():
    # One 'hand' made of two boxes, the near one listed first: a small head-on box in front
    # of a large box turned 40 deg about y (its faces are tilted, so shaded darker).
    near = box((0.0, 0.0, 0.5), size=0.05)
    far = trimesh.creation.box(extents=(0.3, 0.3, 0.3))
    far.apply_transform(trimesh.transformations.rotation_matrix(np.deg2rad(40), (0, 1, 0)))
    far.apply_translation((0.0, 0.0, 1.0))
    mesh = trimesh.util.concatenate([near, far])

    def draw(m):
        return render_overlay(gray_image(), [make_hand(m)], K, lambda s: np.asarray(m.faces),
                              alpha=1.0, draw_skeleton=False, draw_label=False)

    out_both, out_near, out_far = draw(mesh), draw(near), draw(far)
    centre = (slice(235, 246), slice(315, 326))  # inside the near box's front face
    assert not np.array_equal(out_near[centre], out_far[centre]), "test needs distinct shading"
    assert np.array_equal(out_both[centre], out_near[centre])


def test_triangles_behind_camera_are_skipped():
    behind = box((0.0, 0.0, -1.0))
    straddle = box((0.0, 0.0, 0.0), size=0.5)  # every face has a corner at z <= 0
    img = gray_image()
    for mesh in (behind, straddle):
        out = render_overlay(img, [make_hand(mesh)], K, faces_lookup(mesh), draw_skeleton=False, draw_label=False)
        assert np.array_equal(out, img)


def test_skeleton_and_label_are_drawn():
    mesh = box((0.0, 0.0, 1.0))
    joints = np.zeros((21, 3))
    joints[:, 0] = np.linspace(-0.3, 0.3, 21)  # a horizontal line of joints at y = 0.25
    joints[:, 1] = 0.25
    joints[:, 2] = 1.0
    img = gray_image()
    out = render_overlay(img, [make_hand(mesh, joints=joints)], K, faces_lookup(mesh))
    row = int(240 + 500 * 0.25)
    # Joint dots drawn where joints project (well outside the mesh).
    u = int(320 + 500 * joints[0, 0])
    assert changed(out, img)[row - 1:row + 2, u - 1:u + 2].any()
    # Label above the bbox: some pixels changed above the mesh's top edge.
    top = int(240 - 500 * 0.1 / 0.9)
    assert changed(out, img)[max(top - 20, 0):top - 2, 200:440].any()

