"""Shared test fixtures. DDS traffic stays on loopback in every test."""
import os
from pathlib import Path

import pytest

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
HANDS_DATA = SHARED / "data" / "hands"
GOLDEN_HAMER = SHARED / "golden" / "hamer"
GOLDEN_MEDIAPIPE = SHARED / "golden" / "mediapipe_hands"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"test data not found: {path} (the project's shared/ folder beside the clone; CI has it)")
    return path


@pytest.fixture
def hands_data() -> Path:
    """../shared/data/hands (real hand images and video); skips when absent."""
    return _require(HANDS_DATA)


@pytest.fixture
def golden_hamer() -> Path:
    """../shared/golden/hamer (synthetic MANO pickles, HaMeR goldens); skips when absent."""
    return _require(GOLDEN_HAMER)


@pytest.fixture
def golden_mediapipe() -> Path:
    """../shared/golden/mediapipe_hands (LiteRT outputs of MediaPipe's hand models and the
    whole mp.solutions.hands on real images and video); skips when absent."""
    return _require(GOLDEN_MEDIAPIPE)
