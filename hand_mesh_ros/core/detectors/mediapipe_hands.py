"""MediaPipe Hands detector (``mp.solutions.hands`` from the mediapipe 0.10.21 wheel).

The palm detector and hand landmark models ship inside the wheel; nothing is downloaded.

Handedness: ``mp.solutions.hands`` labels hands as if the image were mirrored (a selfie
camera). On a camera topic, which is not mirrored, its "Left" is the person's right hand
(measured: a real right hand is labelled "Left" in 202/202 frames of
``hand_landmarker_test_video.mp4``). ``mirrored=False`` (default) therefore swaps the label;
``mirrored=True`` keeps it, for a selfie view / mirrored image.

World landmarks: MediaPipe's ``multi_hand_world_landmarks`` are metric [m], origin at the
hand's approximate geometric centre, axes aligned with the image (x right, y down, z away
from the camera) — i.e. the camera optical frame up to a translation. They become
``Detection.keypoints_3d``.
"""
from __future__ import annotations

from typing import List

import numpy as np

from ..types import LEFT, RIGHT, Detection, check_rgb_image


class MediaPipeHandDetector:
    """Hands from MediaPipe: 21 keypoints in 2D [px] and 3D [m], box, handedness score, side.

    Args:
        max_hands: at most this many hands per image (``max_num_hands``).
        min_score: minimum detection / tracking confidence in [0, 1]; hands whose
            handedness score is below it are dropped too.
        mirrored: the image is mirrored (selfie view): keep MediaPipe's labels as they are.
        static_image_mode: True for independent images (palm detection on every image);
            False for a video stream (landmarks tracked from the previous frame, faster).
        model_complexity: 0 (lite) or 1 (full) landmark model.

    Raises:
        ValueError: out-of-range arguments.
    """

    def __init__(self, max_hands: int = 2, min_score: float = 0.5, mirrored: bool = False,
                 static_image_mode: bool = False, model_complexity: int = 1):
        self.check_arguments(max_hands, min_score)
        import mediapipe as mp  # heavy import: only when a detector is built

        self.min_score = float(min_score)
        self.mirrored = bool(mirrored)
        self._hands = mp.solutions.hands.Hands(
            static_image_mode=static_image_mode,
            max_num_hands=int(max_hands),
            model_complexity=int(model_complexity),
            min_detection_confidence=self.min_score,
            min_tracking_confidence=self.min_score,
        )

    @staticmethod
    def check_arguments(max_hands: int, min_score: float) -> None:
        """Raise ``ValueError`` for ``max_hands`` < 1 or ``min_score`` outside [0, 1]."""
        if max_hands < 1:
            raise ValueError(f"max_hands must be >= 1, got {max_hands}")
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {min_score}")

    def detect(self, image: np.ndarray) -> List[Detection]:
        """Detect hands in ``image``, (H, W, 3) uint8 RGB.

        Returns:
            Detections sorted by descending score; ``keypoints_2d`` (21, 2) [px],
            ``keypoints_3d`` (21, 3) [m], ``bbox`` the keypoints' tight box [px],
            ``score`` MediaPipe's handedness confidence.

        Raises:
            ValueError: not an (H, W, 3) uint8 array, or an empty image.
        """
        check_rgb_image(image)
        h, w = image.shape[:2]
        result = self._hands.process(np.ascontiguousarray(image))
        if not result.multi_hand_landmarks:
            return []
        detections = []
        for lm2d, lm3d, handedness in zip(result.multi_hand_landmarks,
                                         result.multi_hand_world_landmarks,
                                         result.multi_handedness):
            cls = handedness.classification[0]
            if cls.score < self.min_score:
                continue
            says_right = cls.label == "Right"
            side = RIGHT if says_right == self.mirrored else LEFT
            kp2d = np.array([(p.x * w, p.y * h) for p in lm2d.landmark], np.float32)
            kp3d = np.array([(p.x, p.y, p.z) for p in lm3d.landmark], np.float32)
            bbox = np.concatenate([kp2d.min(0), kp2d.max(0)]).astype(np.float32)
            detections.append(Detection(side=side, score=float(cls.score), bbox=bbox,
                                        keypoints_2d=kp2d, keypoints_3d=kp3d))
        detections.sort(key=lambda d: -d.score)
        return detections

    def reset(self) -> None:
        """Forget the tracked hands: MediaPipe's graph starts a new run (its models stay
        loaded), so the next image goes through palm detection."""
        self._hands.reset()

    def close(self) -> None:
        """Release MediaPipe's graph."""
        self._hands.close()
