"""The four MediaPipe hand networks inside the installed ``mediapipe`` wheel, as torch modules.

Only the ``.tflite`` files shipped by ``mediapipe==0.10.21`` are used (Apache-2.0; nothing is
downloaded): ``modules/palm_detection/palm_detection_{full,lite}.tflite`` and
``modules/hand_landmark/hand_landmark_{full,lite}.tflite``. The wheel is located without
importing mediapipe (which is slow to import and not needed by the torch detector).
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Optional, Tuple, Union

from ....config import BY_NAME, check_value

#: The mediapipe release whose model files this detector is built and tested for.
MEDIAPIPE_VERSION = "0.10.21"


class ModelFilesError(FileNotFoundError):
    """The MediaPipe model files are not where the installed wheel should have them."""


def wheel_models_dir() -> Optional[Path]:
    """``<site-packages>/mediapipe/modules`` of the installed mediapipe, or None if not installed."""
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "modules"


def _installed_version() -> str:
    try:
        return importlib.metadata.version("mediapipe")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def model_files(variant: str = "full", models_dir: Optional[Union[str, Path]] = None) -> Tuple[Path, Path]:
    """Paths of the palm detection and hand landmark models of ``variant``.

    Args:
        variant: "full" or "lite".
        models_dir: a folder laid out like the wheel's ``mediapipe/modules`` (default: the
            installed wheel's).

    Raises:
        ValueError: unknown variant.
        ModelFilesError: a file is missing (another mediapipe version, or none installed);
            the message names the file and ``mediapipe==0.10.21``.
    """
    check_value(BY_NAME["detector_model"], variant)
    root = Path(models_dir) if models_dir is not None else wheel_models_dir()
    if root is None:
        raise ModelFilesError(f"detector 'mediapipe_torch' needs the model files of mediapipe=={MEDIAPIPE_VERSION}, "
                              f"which is not installed: pip install mediapipe=={MEDIAPIPE_VERSION}")
    palm = root / "palm_detection" / f"palm_detection_{variant}.tflite"
    landmark = root / "hand_landmark" / f"hand_landmark_{variant}.tflite"
    for path in (palm, landmark):
        if not path.is_file():
            raise ModelFilesError(
                f"detector 'mediapipe_torch' needs {path.name} from mediapipe=={MEDIAPIPE_VERSION} "
                f"(not found: {path}; installed mediapipe: {_installed_version()}); "
                f"install it with pip install mediapipe=={MEDIAPIPE_VERSION}")
    return palm, landmark
