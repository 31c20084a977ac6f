"""Shared test fixtures. DDS traffic stays on loopback in every test.

A test that needs ../shared (real hand data, goldens) or rclpy skips with the reason when
it is absent (a user's clone without the shared folder). In CI nothing may skip:
``.ci/run`` sets ``HAND_MESH_NO_SKIP=1``, and then every skip is reported as a failure
naming what was missing.

ROS graph of the tests: one DDS domain for this test process and every process it starts
(``ROS_DOMAIN_ID`` in the environment, or one no other process on the machine uses:
:func:`claim_domain_id`), loopback only. Tests in one process run one after another, each
stopping the nodes it started. The venv of scripts/setup_env.sh is also a ROS 2 prefix
(share/hand_mesh_ros, lib/hand_mesh_ros): it is put on ``AMENT_PREFIX_PATH`` as
``source .venv/setup.bash`` does, for ``ros2 launch`` / ``ros2 run`` / ament lookups.
"""
import atexit
import errno
import fcntl
import importlib.util
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path

import pytest

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
# A test process started in the background of a shell inherits SIGINT ignored, and so would
# every command it starts (exec keeps an ignored signal ignored): `ros2 launch` would then
# never see the Ctrl-C the tests send. Give the commands a terminal's Ctrl-C.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

#: domain ids tried (ROS 2's advice for Linux: 0-101 keep DDS ports out of the ephemeral
#: range; 0 is everyone's default and never taken here)
DOMAIN_IDS = range(1, 102)
#: RTPS well-known ports (DDS-RTPS 2.5, 9.6.1.1): participant i of domain d takes the
#: metatraffic unicast port PB + DG*d + D1 + PG*i; i < PARTICIPANTS_PROBED are probed
PB, DG, PG, D1 = 7400, 250, 2, 10
PARTICIPANTS_PROBED = 32
_CLAIMED = []  # open lock files, held for the life of this process


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError as e:
            return e.errno == errno.EADDRINUSE
    return False


def domain_in_use(domain: int) -> bool:
    """True when some DDS participant on this machine listens in ``domain``."""
    return any(_port_in_use(PB + DG * domain + D1 + PG * i) for i in range(PARTICIPANTS_PROBED))


def claim_domain_id(lock_dir: Path = Path(tempfile.gettempdir()) / "hand_mesh_ros_test_domains") -> int:
    """A ROS domain id for this process: ``ROS_DOMAIN_ID`` when the environment sets it;
    else the first free id from a pid-dependent start, free meaning that no other test
    process holds its lock file (``flock``, released when this process ends, even killed)
    and that no DDS participant listens in it (other ROS processes on the machine).

    Raises:
        RuntimeError: every id in ``DOMAIN_IDS`` is taken.
    """
    given = os.environ.get("ROS_DOMAIN_ID", "").strip()
    if given:
        return int(given)
    lock_dir.mkdir(exist_ok=True)
    ids = list(DOMAIN_IDS)
    start = os.getpid() % len(ids)
    for domain in ids[start:] + ids[:start]:
        fh = open(lock_dir / f"{domain}.lock", "w")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            continue
        if domain_in_use(domain):
            fh.close()
            continue
        _CLAIMED.append(fh)
        atexit.register(fh.close)  # the lock is this process's until it ends
        return domain
    raise RuntimeError(f"no free ROS domain id in {DOMAIN_IDS.start}..{DOMAIN_IDS.stop - 1}; set ROS_DOMAIN_ID")


#: this test process's ROS domain (inherited by every process it starts)
DOMAIN_ID = claim_domain_id()
os.environ["ROS_DOMAIN_ID"] = str(DOMAIN_ID)

VENV = Path(sys.prefix)
if (VENV / "share" / "ament_index").is_dir() and str(VENV) not in os.environ.get("AMENT_PREFIX_PATH", "").split(":"):
    os.environ["AMENT_PREFIX_PATH"] = os.pathsep.join(filter(None, [str(VENV), os.environ.get("AMENT_PREFIX_PATH")]))

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


# ------------------------------------------------------------------ real ROS 2 tools
#: what scripts/setup_env.sh installs from ../shared/ros2-python (a real ROS 2 install has them)
ROS2_TOOLS = ("launch", "launch_ros", "ros2cli", "tf2_ros", "message_filters", "diagnostic_updater")


def require_ros2_tools():
    """Skip (a failure under ``HAND_MESH_NO_SKIP``) when the real ROS 2 tools are missing."""
    missing = [m for m in ROS2_TOOLS if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"ROS 2 tools not installed: {', '.join(missing)} (scripts/setup_env.sh installs them "
                    "from ../shared/ros2-python; a ROS 2 install has them)")


@pytest.fixture(params=["real", "standin"])
def ros_packages(request, monkeypatch):
    """Run a test twice: with the real message_filters / tf2_ros / diagnostic_updater, and with
    the node's stand-ins (``HAND_MESH_ROS_STANDINS=1``, ``hand_mesh_ros.ros.real_packages``),
    what a pip-only user runs. Set in ``os.environ``: in-process nodes built in the test and
    processes it starts see it. Returns "real" or "standin"."""
    from hand_mesh_ros.ros import real_packages

    if request.param == "real":
        require_ros2_tools()
        monkeypatch.delenv(real_packages.STANDINS_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(real_packages.STANDINS_VARIABLE, "1")
    return request.param
