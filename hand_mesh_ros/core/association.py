"""Association stage: each frame's detections paired with hand tracks, per camera.

Per frame (``core.tracking`` has the rules): duplicate detections removed
(``suppress_duplicates``), the ``max_hands`` best kept, and each paired with its track by the
camera's ``HandTracker`` (stable id, side after hysteresis, primary flag). In static-image
mode every image starts with no tracks. The keys of the tracks whose per-track state ended
(dropped, forgotten, or side changed) are handed back, so that the stages keeping such state
(``regressors.FitRegressor``'s warm starts, ``smoothing_stage.SmoothingStage``) drop it.
"""
from __future__ import annotations

import copy
from typing import Dict, List, Optional, Sequence, Tuple

from .records import Frame, TrackedHand, TrackKey
from .tracking import HandTracker, suppress_duplicates


class Association:
    """Hand tracks of every camera.

    Args:
        max_hands: hands kept per image (>= 1), the best scores after de-duplication.
        track_max_missed, side_hysteresis: ``HandTracker`` settings.
        nms_iou, nms_keypoint_distance: ``suppress_duplicates`` thresholds.
        static_image_mode: unrelated images: the tracks are forgotten before each image.
    """

    def __init__(self, max_hands: int, track_max_missed: int, side_hysteresis: int, nms_iou: float,
                 nms_keypoint_distance: float, static_image_mode: bool):
        self.max_hands = int(max_hands)
        self.track_max_missed, self.side_hysteresis = track_max_missed, side_hysteresis
        self.nms_iou, self.nms_keypoint_distance = nms_iou, nms_keypoint_distance
        self.static_image_mode = static_image_mode
        self._trackers: Dict[str, HandTracker] = {}

    def associate(self, frames: Sequence[Frame]) -> Tuple[List[TrackedHand], List[TrackKey]]:
        """Pair the detections of ``frames`` (``Frame.detections``) with tracks, frame by frame.

        Returns:
            ``(hands, ended)``: the tracked hands of all frames in frame order (per frame by
            descending score, at most ``max_hands``), and the keys whose per-track state
            ended in these frames (in the order it happened).
        """
        hands: List[TrackedHand] = []
        ended: List[TrackKey] = []
        for frame in frames:
            dets = suppress_duplicates(frame.detections, self.nms_iou, self.nms_keypoint_distance)[: self.max_hands]
            tracker = self._tracker(frame.camera)
            if self.static_image_mode:
                tracker.reset()
            tracks = tracker.update(dets)
            ended += [(frame.camera, i) for i in tracker.take_ended()]
            # a copy of each track as this frame left it: a later frame of the same camera in
            # the batch updates the track (side, primary) before this frame's hands are placed
            hands += [TrackedHand(frame, det, copy.copy(track)) for det, track in zip(dets, tracks)]
        return hands, ended

    def gone(self, keys: Sequence[TrackKey]) -> List[TrackKey]:
        """The keys among ``keys`` whose track no longer exists (dropped or forgotten; a
        track that changed side lives on under its key)."""
        if not keys:  # the usual case: no track ended in the batch
            return []
        live = {(camera, t.track_id) for camera, tracker in self._trackers.items() for t in tracker.tracks}
        return [key for key in keys if key not in live]

    def reset(self, camera: Optional[str] = None) -> List[TrackKey]:
        """Forget the tracks of ``camera`` (of every camera when None); returns their keys."""
        ended: List[TrackKey] = []
        for key, tracker in self._trackers.items():
            if camera is None or key == camera:
                tracker.reset()
                ended += [(key, i) for i in tracker.take_ended()]
        return ended

    def _tracker(self, camera: str) -> HandTracker:
        if camera not in self._trackers:
            self._trackers[camera] = HandTracker(self.track_max_missed, self.side_hysteresis)
        return self._trackers[camera]
