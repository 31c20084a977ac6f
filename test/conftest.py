"""Shared test fixtures. DDS traffic stays on loopback in every test.

A test that needs ../shared (real hand data, goldens) or rclpy skips with the reason when
it is absent (a user's clone without the shared folder). In CI nothing may skip:
``.ci/run`` sets ``HAND_MESH_NO_SKIP=1``, and then every skip is reported as a failure
naming what was missing.
"""
import os
from pathlib import Path

import pytest

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"

REPO = Path(__file__).resolve().parents[1]
#: the project's shared/ folder beside the clone (HAND_MESH_SHARED overrides, e.g. for a worktree)
SHARED = Path(os.environ.get("HAND_MESH_SHARED") or REPO.parent / "shared")
HANDS_DATA = SHARED / "data" / "hands"
GOLDEN_HAMER = SHARED / "golden" / "hamer"
NO_SKIP = os.environ.get("HAND_MESH_NO_SKIP", "") not in ("", "0")
GOLDEN_MEDIAPIPE = SHARED / "golden" / "mediapipe_hands"


def require(path: Path) -> Path:
    """``path`` if it exists, else skip the test (a failure under ``HAND_MESH_NO_SKIP``)."""
    if not path.exists():
        pytest.skip(f"test data not found: {path} (the project's shared/ folder beside the clone; CI has it)")
    return path


@pytest.fixture(scope="session")
def hands_data() -> Path:
    """../shared/data/hands (real hand images and video); skips when absent."""
    return require(HANDS_DATA)


@pytest.fixture
def golden_hamer() -> Path:
    """../shared/golden/hamer (synthetic MANO pickles, HaMeR goldens); skips when absent."""
    return require(GOLDEN_HAMER)


@pytest.fixture
def golden_mediapipe() -> Path:
    """../shared/golden/mediapipe_hands (LiteRT outputs of MediaPipe's hand models and the
    whole mp.solutions.hands on real images and video); skips when absent."""
    return require(GOLDEN_MEDIAPIPE)


def _fail_skip(report) -> None:
    if NO_SKIP and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under HAND_MESH_NO_SKIP=1 (CI): {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_skip(outcome.get_result())
