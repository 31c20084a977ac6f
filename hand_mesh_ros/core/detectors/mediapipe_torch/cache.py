"""Converted networks cached on disk, keyed by the ``.tflite`` file's SHA-256.

At first use a model file is parsed and converted (``tflite_reader`` -> ``convert`` ->
``network``) and the result (layer description + float32 weights) is written to
``<cache dir>/<model name>.<sha256>.pt``; later start-ups load it instead of parsing the
flatbuffer. The cache directory is ``$HAND_MESH_ROS_CACHE_DIR`` when set, else
``$XDG_CACHE_HOME/hand_mesh_ros``, else ``~/.cache/hand_mesh_ros``.

A cache file is trusted only when everything checks: the file magic, a header naming the
same source SHA-256 and converter version, the SHA-256 of the payload, a payload that
``torch.load(weights_only=True)`` reads (no code is ever unpickled), and weights that fit
the layers exactly. Anything else (truncated, bit-flipped, written for another model file
or by another converter version) is logged and rebuilt from the ``.tflite`` file. Files are
written to a temporary file in the same directory and renamed into place (atomic on POSIX),
so a crash or a concurrent writer never leaves a half-written cache; a conversion failure
writes nothing. An unwritable directory only costs the conversion at every start-up.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import torch

from .convert import CONVERTER_VERSION, NetworkSpec, convert_graph
from .network import build_network
from .tflite_reader import read_tflite

log = logging.getLogger(__name__)

#: Environment variable naming the cache directory (overrides the XDG default).
CACHE_DIR_ENV = "HAND_MESH_ROS_CACHE_DIR"
_MAGIC = b"HAND_MESH_ROS_TFLITE_CACHE\n"


class CacheError(ValueError):
    """A cache file that must not be used (the message says why)."""


def default_cache_dir() -> Path:
    """``$HAND_MESH_ROS_CACHE_DIR``, else ``$XDG_CACHE_HOME/hand_mesh_ros``, else ``~/.cache/hand_mesh_ros``."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "hand_mesh_ros"


def cache_path(model_path: Union[str, Path], sha256: str, cache_dir: Optional[Union[str, Path]] = None) -> Path:
    """Where the converted ``model_path`` with content hash ``sha256`` is cached."""
    return Path(cache_dir or default_cache_dir()) / f"{Path(model_path).stem}.{sha256}.pt"


def _encode(spec: NetworkSpec, state: Dict[str, torch.Tensor], sha256: str) -> bytes:
    buf = io.BytesIO()
    torch.save({"spec": json.dumps(spec.describe()), "state": state}, buf)
    payload = buf.getvalue()
    header = json.dumps({"source_sha256": sha256, "converter_version": CONVERTER_VERSION,
                         "payload_sha256": hashlib.sha256(payload).hexdigest(),
                         "payload_bytes": len(payload)}).encode()
    return _MAGIC + len(header).to_bytes(4, "little") + header + payload


def _decode(blob: bytes, sha256: str) -> Tuple[NetworkSpec, Dict[str, torch.Tensor]]:
    if not blob.startswith(_MAGIC):
        raise CacheError("not a hand_mesh_ros cache file (magic missing)")
    pos = len(_MAGIC)
    n = int.from_bytes(blob[pos:pos + 4], "little")
    try:
        header = json.loads(blob[pos + 4:pos + 4 + n].decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CacheError(f"unreadable header ({exc})") from exc
    if header.get("source_sha256") != sha256:
        raise CacheError(f"written for another model file (sha256 {header.get('source_sha256')})")
    if header.get("converter_version") != CONVERTER_VERSION:
        raise CacheError(f"written by converter version {header.get('converter_version')}, "
                         f"this is {CONVERTER_VERSION}")
    payload = blob[pos + 4 + n:]
    if len(payload) != header.get("payload_bytes") or hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise CacheError("payload damaged (size or sha256 mismatch)")
    data = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    desc = json.loads(data["spec"])
    spec = NetworkSpec(**desc)
    return spec, data["state"]


def _write_atomic(path: Path, blob: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load_network(model_path: Union[str, Path], cache_dir: Optional[Union[str, Path]] = None) -> torch.nn.Module:
    """The torch module of ``model_path`` (a ``.tflite`` file), from the cache or converted.

    Args:
        model_path: the TFLite model.
        cache_dir: cache directory; default ``default_cache_dir()``.

    Returns:
        The network (``network.build_network``) on the CPU, eval mode, no gradients.

    Raises:
        FileNotFoundError: ``model_path`` does not exist.
        tflite_reader.TFLiteFormatError: not a TFLite model.
        convert.ConversionError / UnsupportedOperatorError: the graph cannot be converted
            (the message names the operator); no cache file is written then.
    """
    model_path = Path(model_path)
    raw = model_path.read_bytes()
    sha256 = hashlib.sha256(raw).hexdigest()
    target = cache_path(model_path, sha256, cache_dir)
    if target.exists():
        try:
            spec, state = _decode(target.read_bytes(), sha256)
            return build_network(spec, state)
        except Exception as exc:  # corrupt, foreign or unreadable: never trusted, rebuilt
            log.warning("converted-model cache %s is not usable (%s); rebuilding it from %s",
                        target, exc, model_path)
    spec = convert_graph(read_tflite(raw))
    module = build_network(spec)
    try:
        _write_atomic(target, _encode(spec, module.state_dict(), sha256))
    except OSError as exc:
        log.warning("cannot write the converted-model cache %s (%s); converting at every start-up", target, exc)
    return module
