"""Tiled palm search (``detectors.mediapipe_torch.tiling``): small hands in large frames.

Real hands (../shared/data/hands, cut out with their keypoint box) pasted with
``cv2.INTER_AREA`` onto a mosaic of scikit-image's hand-free photographs
(``benchmarks/hand_scenes.py``, fixed seeds):

* a 96 px hand in a 1920x1080 frame: the whole-frame pass misses it, tiling finds it in
  static mode and in tracking mode (``round_robin``, within the promised number of frames,
  then tracked with no further palm search), keypoints close to the same hand detected
  alone in a tight crop of the same frames (bounds and why at ``KEYPOINT_BOUND``), also
  over 12 scenes (three sizes, four places);
* a hand on a tile border, and on a corner where four tiles meet, is one hand; a hand that
  the whole frame and a tile both find, or whose palm is too large for the overlap, too;
* arms and elbows without hands (a person below its hands, through lenses) give no hand;
* ``off`` gives exactly the whole-frame detections (MediaPipe's pipeline recomposed from
  ``palm``'s functions), and ``auto`` on frames that get no tiles too;
* one batched forward gives the same palms as the tiles run one by one;
* geometry, schedule, parameters, and bad input (1x1 ... 40000x1, bad values).
"""
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hand_mesh_ros.core.detectors import FrameSizeRouter, create_detector
from hand_mesh_ros.core.detectors.mediapipe_torch import MediaPipeTorchHandDetector, palm, tiling
from hand_mesh_ros.core.detectors.mediapipe_torch import detector as mp_detector
from hand_mesh_ros.core.detectors.mediapipe_torch.roi import Roi
from hand_mesh_ros.core.pipeline import HandMeshPipeline, PipelineConfig
from hand_mesh_ros.frames import FrameSource

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_range  # noqa: E402
import hand_scenes as hs  # noqa: E402
from test_mediapipe_torch_detector import ForwardSpy  # noqa: E402

SIZE = (1920, 1080)
CROP = 96
#: where the small hand goes: x 700..796, y 450..546, wholly inside a tile of the finest level
#: (x 665..857, y 381..573) and one of the next (x 512..896, y 232..616)
PLACE = (700, 450)
#: Median keypoint distance to the same hand alone in a tight crop of the same frame (3 crop
#: sides), as a share of the hand box diagonal (issue 13's bound): mean over the frames or
#: scenes; every one within twice that. The reference is the tight crop read by tracking
#: mode until it settles (``_tight_reference``): one static reading of a hand this small
#: moves by 2-7.6 % between crops (the palm, so the hand region, differs), the settled one
#: does not. Measured: tracking 0.5-1.9 % (mean 1.0 %); static, 12 scenes, 0.5-2.1 % (mean 1.2 %).
KEYPOINT_BOUND = 0.015
#: Against one static whole-frame reading (``off``) of a large hand: that reading's own spread.
STATIC_SPREAD = 0.06
#: Seeds of hand-free 1920x1080 mosaics (``hs.mosaic``) with a false palm that reads as a
#: hand over every refine pass: seed 36, last presence 0.776 (of seeds 0-45, 36 and 39 have
#: one; 39's, 0.515, is too close to ``min_score`` to be a stable case).
FALSE_HAND_SEEDS = (36,)


@pytest.fixture(scope="module")
def detectors(tmp_path_factory):
    cache = tmp_path_factory.mktemp("tflite_cache")

    plain = []

    def make(**kw):
        """A detector (static mode unless told); with no arguments, one shared plain one."""
        if not kw:
            if not plain:
                plain.append(MediaPipeTorchHandDetector(cache_dir=cache, static_image_mode=True))
            return plain[0]
        kw.setdefault("static_image_mode", True)
        return MediaPipeTorchHandDetector(cache_dir=cache, **kw)

    return make


@pytest.fixture(scope="module")
def hand(hands_data, detectors):
    """The open hand of hand_landmarker_test_image.jpg, cut out with its keypoint box."""
    img = hs.read_rgb(hands_data / "mediapipe_samples" / "hand_landmarker_test_image.jpg")
    (det,) = detectors().detect(img)
    return hs.cut_hand(img, det.keypoints_2d, "hand_landmarker_test_image")


@pytest.fixture(scope="module")
def background():
    return hs.mosaic(np.random.default_rng(13), hs.backgrounds(), *SIZE)


def _scene(background, hand, place, crop=CROP, noise_seed=None):
    frame = background.copy()
    pasted = hs.paste(frame, hand, crop, *place)
    return _perturbed(frame, noise_seed), pasted


def _perturbed(frame, noise_seed=None):
    """``frame`` +-1 grey level (``noise_seed``; None: as it is): the result must not hinge on rounding."""
    if noise_seed is None:
        return frame
    noise = np.random.default_rng(noise_seed).integers(-1, 2, frame.shape)
    return np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def _diagonal(kp):
    return float(np.linalg.norm(kp.max(0) - kp.min(0)))


def _tight_window(pasted):
    """(x0, y0, side): a square 3 crop sides wide around the pasted hand."""
    side = 3 * int(pasted.box[2] - pasted.box[0])
    cx, cy = (pasted.box[:2] + pasted.box[2:]) / 2
    return int(cx - side / 2), int(cy - side / 2), side


def _tight_reference(tracker, frame, window, settle=4):
    """The hand detected alone in the ``window`` of the same frame by ``tracker`` (tracking
    mode, no tiles), read ``settle`` times (a new hand: the hand region comes from the palm,
    then from the landmarks of the previous reading); keypoints in frame pixels."""
    x0, y0, side = window
    crop = np.ascontiguousarray(frame[y0:y0 + side, x0:x0 + side])
    for _ in range(settle):
        (det,) = tracker.detect(crop, camera="tight")
    return det.keypoints_2d + [x0, y0]


def _error(det, ref):
    """Median keypoint distance as a share of the reference's box diagonal."""
    return float(np.median(np.linalg.norm(det.keypoints_2d - ref, axis=1))) / _diagonal(ref)


def _assert_close_to_reference(det, ref, bound=2 * KEYPOINT_BOUND):
    assert _error(det, ref) <= bound, _error(det, ref)


@pytest.fixture()
def tracker(detectors):
    """A fresh tracking-mode detector (one hand, no tiles) for ``_tight_reference``."""
    return detectors(static_image_mode=False, max_hands=1)


# -- the small hand ---------------------------------------------------------------------
@pytest.mark.parametrize("noise_seed", [None, 1])
def test_small_hand_missed_whole_frame_is_found_with_tiles(detectors, tracker, hand, background, noise_seed):
    frame, pasted = _scene(background, hand, PLACE, noise_seed=noise_seed)
    assert not hs.found(detectors().detect(frame), pasted), "the whole-frame pass finds it: nothing to prove"
    tiled = detectors(detection_tiling="auto")
    found = tiled.detect(frame)
    assert len(found) == 1 and hs.found(found, pasted)
    _assert_close_to_reference(found[0], _tight_reference(tracker, frame, _tight_window(pasted)))


@pytest.mark.parametrize("noise_seed", [None, 1])
def test_static_keypoints_of_small_hands_match_the_hand_alone(detectors, tracker, hand, background, noise_seed):
    """Static mode, 12 scenes (crops 80, 96, 120 px at four places of a 1920x1080 frame):
    one hand each, keypoints within 1.5 % of the box diagonal of the same hand alone in a
    tight crop, mean over the scenes; every scene within 3 %."""
    tiled = detectors(detection_tiling="auto")
    errors = []
    for crop in (80, 96, 120):
        for place in ((700, 450), (300, 300), (1200, 600), (1500, 200)):
            frame, pasted = _scene(background, hand, place, crop, noise_seed)
            found = tiled.detect(frame)
            assert len(found) == 1 and hs.found(found, pasted), (crop, place)
            tracker.reset()
            errors.append(_error(found[0], _tight_reference(tracker, frame, _tight_window(pasted))))
    print(f"static keypoint errors: mean {np.mean(errors):.2%}, max {max(errors):.2%}")
    assert np.mean(errors) <= KEYPOINT_BOUND and max(errors) <= 2 * KEYPOINT_BOUND, np.round(errors, 4)


def test_small_hand_is_acquired_by_round_robin_within_the_bound_and_then_tracked(detectors, hand, background):
    """A stream (the hand moving by a pixel a frame), tracking mode, max_hands 1: found
    within ``acquire_bound`` frames; afterwards followed by the landmarks alone (no palm
    search), keypoints within 1.5 % of the box diagonal of the same hand tracked alone in a
    tight window of the same frames (mean over 11 frames; 3 % on every frame)."""
    det = detectors(static_image_mode=False, max_hands=1, detection_tiling="auto", tile_scan="round_robin")
    tight = detectors(static_image_mode=False, max_hands=1)
    window = _tight_window(_scene(background, hand, PLACE)[1])
    det.palm_net = ForwardSpy(det.palm_net)
    bound = tiling.acquire_bound(len(tiling.frame_tiles("auto", *SIZE)))
    assert bound == 296
    acquired, errors = None, []
    for t in range(bound + 13):
        frame, pasted = _scene(background, hand, (PLACE[0] + t % 3, PLACE[1] + t % 2))
        dets = det.detect(frame, camera="cam")
        ref = _tight_reference(tight, frame, window, settle=1)  # the stream itself settles it
        if acquired is None:
            if dets:
                acquired, searches = t, len(det.palm_net.sizes)
                assert searches == t + 1  # a palm search on every frame until then
            continue
        assert len(dets) == 1 and hs.found(dets, pasted), t
        if t >= acquired + 2:  # both regions from the landmarks by now
            errors.append(_error(dets[0], ref))
        if t >= acquired + 12:
            break
    assert acquired is not None and acquired < bound, acquired
    assert len(errors) == 11 and np.mean(errors) <= KEYPOINT_BOUND and max(errors) <= 2 * KEYPOINT_BOUND, errors
    assert len(det.palm_net.sizes) == searches, "palm searches after the hand was tracked"
    # round robin: the whole frame plus half a tile per search on average
    schedule, grid = tiling.RoundRobin(0), tiling.frame_tiles("auto", *SIZE)
    assert sum(det.palm_net.sizes) - searches == sum(len(schedule.next_tiles(grid)) for _ in range(searches))


@pytest.mark.parametrize("place", [(tiling.AUTO_TILE_SIDE - CROP // 2, 100),
                                   (tiling.AUTO_TILE_SIDE - CROP // 2, tiling.AUTO_TILE_SIDE - CROP // 2)],
                         ids=["tile-border", "four-tile-corner"])
def test_a_hand_across_tile_borders_is_one_hand(detectors, tracker, hand, background, place):
    frame, pasted = _scene(background, hand, place)
    det = detectors(detection_tiling="auto", max_hands=3)
    found = det.detect(frame)
    assert len(found) == 1 and hs.found(found, pasted)
    _assert_close_to_reference(found[0], _tight_reference(tracker, frame, _tight_window(pasted)))


@pytest.mark.parametrize("place, whole_frame", [((300, 450), 0), ((700, 450), 1), ((900, 450), 2)],
                         ids=["missed-whole-frame", "found-by-both", "two-whole-frame-palms"])
def test_a_large_hand_in_a_tiled_frame_is_one_hand(detectors, tracker, hand, background, place, whole_frame):
    """A 240 px hand in 1920x1080: its palm (~90 px) is too large to keep a palm's clearance
    from the edges of the tiles, and the whole frame misses it in the first place, finds it
    in the second, and finds it twice (two palms, MediaPipe's own duplicate) in the third:
    with tiles, always one hand, where it is."""
    frame, pasted = _scene(background, hand, place, crop=240)
    off = detectors(max_hands=3).detect(frame)
    assert len(off) == whole_frame and hs.found(off, pasted) == (whole_frame > 0)
    found = detectors(detection_tiling="auto", max_hands=3).detect(frame)
    assert len(found) == 1 and hs.found(found, pasted)
    _assert_close_to_reference(found[0], _tight_reference(tracker, frame, _tight_window(pasted)))


def test_arms_and_elbows_without_hands_give_no_hand(detectors, hands_data):
    """test5.jpg below its hands (forearms, elbows), as it is and through three wide lenses,
    mirrored too (1200x799, 54 + 15 + 4 tiles): no detection with tiles, as without. An elbow cut
    by a tile edge was once answered as a hand (score 1.0) under a clearance of a quarter palm,
    before new hands of tiled frames were verified by their presence."""
    frames = hs.people_frames(hands_data)
    assert len(frames) == 8 and all(len(tiling.frame_tiles("auto", f.shape[1], f.shape[0])) == 73 for f in frames)
    tiled, off = detectors(detection_tiling="auto"), detectors()
    for i, frame in enumerate(frames):
        assert off.detect(frame) == [], i
        assert tiled.detect(frame) == [], i


@pytest.mark.parametrize("noise_seed", [None, 1])
def test_false_palms_that_read_as_hands_are_not_new_hands(detectors, noise_seed, monkeypatch):
    """Hand-free 1920x1080 mosaics (``FALSE_HAND_SEEDS``) on which a tile's false palm still
    reads as a hand after the refine passes (presence above ``min_score``, below
    ``NEW_HAND_PRESENCE``): no detection; without the presence rule, a detection."""
    det = detectors(detection_tiling="auto")
    for seed in FALSE_HAND_SEEDS:
        frame = _perturbed(hs.mosaic(np.random.default_rng(seed), hs.backgrounds(), *SIZE), noise_seed)
        assert det.detect(frame) == [], seed
        with monkeypatch.context() as m:
            m.setattr(mp_detector, "NEW_HAND_PRESENCE", 0.0)
            assert len(det.detect(frame)) == 1, seed


def test_many_false_palms_do_not_crowd_out_the_hand(detectors, hand, background):
    """A hand-free 1920x1080 mosaic shows the palm network more false palms than 2
    ``max_hands`` (12.6 on average over 148 tiles): up to ``TILED_PALMS`` go to the landmark
    network, so a small hand whose palm scores below them is still read (and found)."""
    det = detectors(detection_tiling="auto")
    seen = []
    original = det._landmarks
    det._landmarks = lambda images, hands: seen.append(len(hands)) or original(images, hands)
    rois = det._palm_rois({0: det._image(background)}, {0: SIZE}, {0: tiling.frame_tiles("auto", *SIZE)})[0]
    assert 2 * det.max_hands < len(rois) <= mp_detector.TILED_PALMS
    frame, pasted = _scene(background, hand, PLACE, crop=64)
    found = det.detect(frame)
    assert len(found) == 1 and hs.found(found, pasted)
    assert seen[0] > 2 * det.max_hands  # the first landmark forward read every palm


@pytest.mark.parametrize("noise_seed", [None, 1])
def test_part_of_a_large_hand_is_not_a_second_hand(detectors, hands_data, background, noise_seed, monkeypatch):
    """test1.jpg's OK sign (mirrored) at 200-300 px in 1920x1080, six scenes: the fine tiles
    read its fingers as a hand of their own (a keypoint box inside the hand's); that reading
    is part of the hand, not a second one (``NESTED_SIDE``): one hand in every scene; without
    the rule, a part in at least two of them (measured: all six)."""
    img = hs.read_rgb(hands_data / "hamer_example_data" / "test1.jpg")
    ok_sign = hs.cut_hand(img, min(detectors().detect(img), key=lambda d: d.bbox[0]).keypoints_2d, "test1").flipped()
    det = detectors(detection_tiling="auto")
    parts = 0
    for place, crop in (((612, 820), 240), ((1500, 200), 240), ((1500, 200), 300), ((900, 450), 200),
                        ((100, 100), 200), ((1400, 700), 240)):
        frame, pasted = _scene(background, ok_sign, place, crop, noise_seed)
        found = det.detect(frame)
        assert len(found) == 1 and hs.found(found, pasted), (place, crop)
        with monkeypatch.context() as m:
            m.setattr(mp_detector, "NESTED_SIDE", 0.0)
            extra = [d for d in det.detect(frame) if not hs.found([d], pasted)]
        parts += any((d.bbox[:2] >= found[0].bbox[:2] - 2).all() and (d.bbox[2:] <= found[0].bbox[2:] + 2).all()
                     for d in extra)
    assert parts >= 2, parts


def test_hands_of_a_tiled_image_are_kept_once_and_at_most_max_hands(detectors):
    """The rule after the landmarks: a hand whose landmark ROI overlaps a kept one (IoU > 0.5)
    is the same hand; apart ones are kept until ``max_hands``."""
    det = detectors(detection_tiling="auto", max_hands=2)
    kept = []
    assert det._first_sight(Roi(100, 100, 80, 80), kept)
    assert not det._first_sight(Roi(110, 105, 80, 80), kept)  # IoU 0.70
    assert det._first_sight(Roi(160, 100, 80, 80), kept)  # IoU 0.14: a hand beside it
    assert not det._first_sight(Roi(500, 500, 80, 80), kept)  # max_hands reached
    assert kept == [Roi(100, 100, 80, 80), Roi(160, 100, 80, 80)]


# -- off is MediaPipe, batched is one by one ----------------------------------------------
def _whole_frame_rois(det, image):
    """MediaPipe's palm path composed from ``palm``'s functions: the letterboxed frame ->
    decode -> weighted NMS -> hand ROIs (what the detector did before tiling existed)."""
    h, w = image.shape[:2]
    x = det._crops(image, [palm.letterbox_affine(w, h)], palm.INPUT_SIZE, "zero").permute(0, 3, 1, 2)
    _, rows = palm.decode(*det._forward(det.palm_net, x), det.anchors, det.min_score)
    pad = palm.letterbox(w, h)[1]
    palms = palm.weighted_nms(rows.numpy())[: det.max_hands]
    return [r for r in (palm.hand_roi(palm.remove_letterbox(p, pad), w, h) for p in palms) if r.is_valid()]


def test_off_is_exactly_the_whole_frame_search(detectors, hands_data, hand, background):
    det = detectors(max_hands=3)
    assert det.detection_tiling == "off"
    images = [hs.read_rgb(hands_data / "hamer_example_data" / n) for n in ("test1.jpg", "test5.jpg")]
    images.append(_scene(background, hand, PLACE)[0])
    for img in images:
        h, w = img.shape[:2]
        got = det._palm_rois({0: img}, {0: (w, h)}, {0: ()})[0]
        assert [p.roi for p in got] == _whole_frame_rois(det, img)
        assert not any(p.tiles_only for p in got)


def test_auto_without_tiles_is_bit_identical_to_off_on_the_video(detectors, hands_data):
    """640x360 frames get no tiles under auto: tracking on the test video gives the very
    same detections, frame by frame."""
    frames = [f.image for f in FrameSource(hands_data / "mediapipe_samples/hand_landmarker_test_video.mp4", 15)]
    off = detectors(static_image_mode=False)
    auto = detectors(static_image_mode=False, detection_tiling="auto")
    for img in frames:
        a, b = off.detect(img), auto.detect(img)
        assert len(a) == len(b) == 1
        np.testing.assert_array_equal(a[0].keypoints_2d, b[0].keypoints_2d)
        np.testing.assert_array_equal(a[0].keypoints_3d, b[0].keypoints_3d)


def test_auto_on_the_cpu_keeps_the_graph_for_frames_without_tiles(hands_data, hand, background):
    """detector auto, detection_tiling auto, CPU: 640x360 video frames go to MediaPipe's graph
    (the detections of detector mediapipe, frame by frame), a 1920x1080 frame to
    mediapipe_torch, which finds the small hand there by its tiles."""
    frames = [f.image for f in FrameSource(hands_data / "mediapipe_samples/hand_landmarker_test_video.mp4", 10)]
    auto = HandMeshPipeline(PipelineConfig(device="cpu", tile_scan="all"))  # all: found on its first frame
    graph = HandMeshPipeline(PipelineConfig(device="cpu", detector="mediapipe", detection_tiling="off"))
    try:
        assert isinstance(auto.detector, FrameSizeRouter)
        for i, img in enumerate(frames):
            a = auto.detector.detect(img, camera="video")
            b = graph.detector.detect(img, camera="video")
            assert len(a) == len(b) == 1, i
            np.testing.assert_array_equal(a[0].keypoints_2d, b[0].keypoints_2d)
        frame, pasted = _scene(background, hand, PLACE)
        found = auto.detector.detect(frame, camera="big")
        assert hs.found(found, pasted)
        assert "big" in auto.detector.tiled._cameras and "big" not in auto.detector.whole._by_camera
        assert "video" in auto.detector.whole._by_camera and "video" not in auto.detector.tiled._cameras
    finally:
        auto.close()
        graph.close()


def test_one_batched_forward_gives_the_palms_of_tiles_run_one_by_one(detectors, hand, background):
    frame, _ = _scene(background, hand, PLACE)
    det = detectors(detection_tiling="auto", batch_size=256)
    det.palm_net = ForwardSpy(det.palm_net)
    det.detect_batch([("a", frame), ("b", frame[:720, :1280].copy())])
    assert det.palm_net.sizes == [1 + 148 + 1 + 67]  # two cameras' frames and tiles, one forward
    grid = tiling.frame_tiles("auto", *SIZE)
    affines = [palm.letterbox_affine(*SIZE)] + [t.affine(palm.INPUT_SIZE) for t in grid]
    crops = det._crops(frame, affines, palm.INPUT_SIZE, "zero").permute(0, 3, 1, 2)
    batched = det._forward(det.palm_net.net, crops)
    for i in range(len(affines)):
        single = det._forward(det.palm_net.net, crops[i:i + 1])
        for a, b in zip(batched, single):
            torch.testing.assert_close(a[i:i + 1], b, atol=1e-4, rtol=1e-4)


def test_large_hands_barely_move_with_tiling(detectors, hands_data):
    """test5.jpg (1200x1799, two hands ~390 px tall): the same hands with tiling on, keypoints
    within the bound of the whole-frame result."""
    img = hs.read_rgb(hands_data / "hamer_example_data" / "test5.jpg")
    off, auto = detectors(max_hands=3).detect(img), detectors(max_hands=3, detection_tiling="auto").detect(img)
    assert sorted(d.side for d in off) == sorted(d.side for d in auto) == [0, 1]
    for d in auto:
        ref = next(o for o in off if o.side == d.side)
        _assert_close_to_reference(d, ref.keypoints_2d, STATIC_SPREAD)


@pytest.fixture(scope="module")
def mid_size_scenes(hands_data, detectors):
    """``bench_range``'s 1280x720 scenes of 160 px crops (its seed 13) whose palms fill
    0.28-0.40 of a 192 px tile, where the palm network scores them 0.9 and more (coarser
    tiles: 0.5-0.9, or misplaced): numbers 6, 11 and 23, (frame, pasted hand) each."""
    hands, photos = hs.source_hands(hands_data, detectors()), hs.backgrounds()
    rng = np.random.default_rng(bench_range._seed(13, (1280, 720), 160))
    scenes = [hs.scene(rng, photos, hands, (1280, 720), 160) for _ in range(24)]
    return [scenes[k] for k in (6, 11, 23)]


@pytest.mark.parametrize("noise_seed", [None, 1])
def test_a_palm_filling_a_third_of_a_fine_tile_is_found(detectors, mid_size_scenes, noise_seed, monkeypatch):
    """A tile keeps palms up to ``tiling.MAX_PALM_SHARE`` (1 / 2.6) of its side: the three
    hands are found (with a share of 0.25 they are not: shown on the frames as they are)."""
    det = detectors(detection_tiling="auto")
    for frame, pasted in mid_size_scenes:
        assert hs.found(det.detect(_perturbed(frame, noise_seed)), pasted), pasted.source
    if noise_seed is None:
        monkeypatch.setattr(tiling, "MAX_PALM_SHARE", 0.25)
        missed = [not hs.found(det.detect(frame), pasted) for frame, pasted in mid_size_scenes]
        assert sum(missed) >= 2, missed


@pytest.mark.parametrize("noise_seed", [None, 1, 2])
def test_a_large_hand_keeps_its_whole_frame_region(detectors, hands_data, noise_seed):
    """thumbs-up.png (1920x1280, a ~500 px fist with the thumb up): with tiling, the same
    hand as the whole-frame search, thumb included, whatever +-1 grey level of noise. A
    768 px tile's view of part of its palm, merged into the whole frame's, once shrank its
    region so that the thumb was lost on some noise seeds (``tiling.parts_of_whole``)."""
    img = _perturbed(hs.read_rgb(hands_data / "mediapipe_samples" / "thumbs-up.png"), noise_seed)
    (off,) = detectors().detect(img)
    (auto,) = detectors(detection_tiling="auto").detect(img)
    assert auto.side == off.side
    _assert_close_to_reference(auto, off.keypoints_2d, STATIC_SPREAD)
    # the thumb tip at least as high as in the whole-frame reading (measured: 323-331 px
    # against 376-403; without the rule 323-617)
    assert auto.bbox[1] <= off.bbox[1] + 0.02 * _diagonal(off.keypoints_2d), (auto.bbox, off.bbox)


# -- geometry, schedule, parameters, bad input ------------------------------------------------
@pytest.mark.parametrize("size, sides, count", [((640, 480), (), 0), ((1280, 720), (192, 384, 768), 50 + 15 + 2),
                                                ((1920, 1080), (192, 384, 768), 112 + 28 + 8),
                                                ((800, 600), (192, 384), 30 + 6), ((1, 1), (), 0), ((457, 457), (), 0)])
def test_tile_pyramid_covers_the_frame_with_the_overlap_on_every_level(size, sides, count):
    tiles = tiling.frame_tiles("auto", *size)
    assert len(tiles) == count and tuple(dict.fromkeys(int(t.side) for t in tiles)) == sides
    for side in sides:
        assert side == tiling.AUTO_TILE_SIDE * 2 ** sides.index(side) and 1.5 * side <= max(size) or side == sides[0]
        overlap = np.ceil(0.3 * side)
        xs = sorted({t.x0 for t in tiles if t.side == side})
        ys = sorted({t.y0 for t in tiles if t.side == side})
        for starts, length in ((xs, size[0]), (ys, size[1])):
            if length > side:
                assert starts[0] == 0 and starts[-1] == length - side
                assert (np.diff(starts) <= side - overlap + 1e-9).all()
            else:
                assert starts == [(length - side) / 2]


def test_tile_palms_map_to_frame_pixels():
    """A tile point u -> the whole frame's letterbox -> (remove_letterbox) frame pixels is
    x0 + u * side."""
    w, h = SIZE
    tile = tiling.frame_tiles("auto", w, h)[8]
    rows = np.zeros((1, 19), np.float32)
    rows[0, 1:] = np.linspace(0.05, 0.95, 18)
    lb = tiling.to_letterbox(rows, tile, w, h)[0]
    p = palm.remove_letterbox(lb, palm.letterbox(w, h)[1])
    np.testing.assert_allclose(p.box * [w, h, w, h], [tile.x0 + rows[0, 1] * tile.side, tile.y0 + rows[0, 2] * tile.side,
                                                    tile.x0 + rows[0, 3] * tile.side, tile.y0 + rows[0, 4] * tile.side],
                               atol=1e-3)


def test_parts_of_a_palm_too_large_for_the_tile_are_left_to_the_whole_frame():
    """``parts_of_whole``, in letterbox units of a 1920x1080 frame and a 768 px tile (a palm
    too large for it: long side > 768 / 2.6 = 295 px = 0.154): a tile palm mostly inside such
    a whole-frame palm is a part; inside a smaller one (two hands under one coarse box), or
    mostly outside the large one, it is not."""
    tile = next(t for t in tiling.frame_tiles("auto", *SIZE) if t.side == 768)

    def rows(*boxes):
        out = np.zeros((len(boxes), 19), np.float32)
        out[:, 1:5] = np.reshape(boxes, (-1, 4))
        return out

    part, beside = (0.42, 0.42, 0.52, 0.52), (0.55, 0.42, 0.65, 0.52)
    large, small = rows((0.40, 0.40, 0.58, 0.58)), rows((0.40, 0.40, 0.54, 0.54))
    assert tiling.parts_of_whole(rows(part, beside), large, tile, *SIZE).tolist() == [True, False]
    assert tiling.parts_of_whole(rows(part, beside), small, tile, *SIZE).tolist() == [False, False]
    assert tiling.parts_of_whole(rows(part), rows(), tile, *SIZE).tolist() == [False]
    assert tiling.parts_of_whole(rows(), large, tile, *SIZE).tolist() == []


@pytest.mark.parametrize("count", [1, 8, 18, 125])
def test_round_robin_scans_every_tile_within_the_bound(count):
    grid = tuple(tiling.Tile(float(i), 0.0, 457.0, (True,) * 4, 138.0) for i in range(count))
    bound = tiling.acquire_bound(count)
    for ordinal in range(4):
        rr = tiling.RoundRobin(ordinal)
        history = [rr.next_tiles(grid) for _ in range(3 * bound + 7)]
        for start in range(len(history) - bound + 1):
            window = {t for step in history[start:start + bound] for t in step}
            assert len(window) == count, (ordinal, start)
        assert sum(map(len, history)) <= (3 * bound + 7) * tiling.ROUND_ROBIN_RATE + 1


def test_round_robin_spreads_cameras_over_frames():
    grid = tiling.frame_tiles("auto", *SIZE)
    cams = [tiling.RoundRobin(c) for c in range(4)]
    per_step = [sum(len(rr.next_tiles(grid)) for rr in cams) for _ in range(40)]
    assert set(per_step) == {2}  # 4 cameras x 1/2 tile: two tiles on every frame, never 0 or 4


@pytest.mark.parametrize("value", ["on", "", "-5", "12.5", 0, 95, -1, 4.0, True, None, [457]])
def test_bad_detection_tiling_names_the_parameter_and_the_allowed_values(value):
    with pytest.raises(ValueError, match=r"^parameter 'detection_tiling': .* is not allowed; allowed: one of auto, off, or an integer >= 96$"):
        PipelineConfig(detection_tiling=value).validate()


@pytest.mark.parametrize("value", ["auto", "off", 457, "600", 96])
def test_good_detection_tiling_values(value):
    PipelineConfig(detection_tiling=value).validate()


def test_bad_tile_scan_names_the_parameter():
    with pytest.raises(ValueError, match=r"^parameter 'tile_scan': 'some' is not allowed; allowed: one of round_robin, all$"):
        PipelineConfig(tile_scan="some").validate()


def test_mediapipe_graph_with_tiling(caplog):
    """detector mediapipe: an explicit tile side is refused at start-up; auto runs untiled
    with one start-up line saying so; off says nothing."""
    with pytest.raises(ValueError, match=r"parameter 'detection_tiling': 600 needs detector 'mediapipe_torch'"):
        PipelineConfig(detector="mediapipe", detection_tiling=600).validate()
    with pytest.raises(ValueError, match=r"parameter 'detection_tiling'"):
        create_detector("mediapipe", detection_tiling=600)
    with caplog.at_level(logging.WARNING, logger="hand_mesh_ros.core.pipeline"):
        HandMeshPipeline(PipelineConfig(detector="mediapipe", detection_tiling="auto")).close()
        HandMeshPipeline(PipelineConfig(detector="mediapipe", detection_tiling="off")).close()
    notes = [r.getMessage() for r in caplog.records if "detection_tiling" in r.getMessage()]
    assert len(notes) == 1 and "has no effect" in notes[0]


@pytest.mark.parametrize("shape, static", [((1, 1), True), ((2, 3), False), ((1, 40000), True),
                                           ((40000, 1), False), ((300, 1900), True), ((300, 1900), False)])
def test_frames_of_any_size_and_aspect_do_not_crash(detectors, shape, static):
    """Static: every tile (595 for 1x40000, eight levels); stream: round robin, three frames."""
    img = np.random.default_rng(0).integers(0, 256, shape + (3,), dtype=np.uint8)
    det = detectors(static_image_mode=static, detection_tiling="auto")
    for _ in range(1 if static else 3):
        assert isinstance(det.detect(img), list)
    h, w = shape
    want = 0 if max(shape) <= 640 else sum(
        len(tiling.axis_starts(w, s, np.ceil(0.3 * s))) * len(tiling.axis_starts(h, s, np.ceil(0.3 * s)))
        for s in tiling.level_sides(tiling.AUTO_TILE_SIDE, w, h))
    assert len(tiling.frame_tiles("auto", w, h)) == want
