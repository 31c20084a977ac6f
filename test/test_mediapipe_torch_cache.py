"""The converted-model cache: keyed by the .tflite file's SHA-256, written atomically,
never trusted when corrupt or foreign (rebuilt instead)."""
import hashlib
import logging
import os
import pickle
import shutil

import pytest
import torch

from hand_mesh_ros.core.detectors.mediapipe_torch import cache as cache_mod
from hand_mesh_ros.core.detectors.mediapipe_torch.cache import (CACHE_DIR_ENV, cache_path, default_cache_dir,
                                                                 load_network)
from hand_mesh_ros.core.detectors.mediapipe_torch.models import model_files

LOG = "hand_mesh_ros.core.detectors.mediapipe_torch.cache"


@pytest.fixture
def model(tmp_path):
    """A copy of the lite palm model (the smallest of the four)."""
    dst = tmp_path / "palm_detection_lite.tflite"
    shutil.copy(model_files("lite")[0], dst)
    return dst


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _out(net):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 192, 192, generator=g)
    with torch.inference_mode():
        return [o.clone() for o in net(x)]


def _no_conversion(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("the model was converted again instead of read from the cache")
    monkeypatch.setattr(cache_mod, "convert_graph", fail)


def test_first_use_writes_cache_keyed_by_sha256_and_second_use_reads_it(model, tmp_path, monkeypatch):
    cdir = tmp_path / "cache"
    first = _out(load_network(model, cdir))
    target = cache_path(model, _sha(model), cdir)
    assert target.is_file() and _sha(model) in target.name
    assert [p.name for p in cdir.iterdir()] == [target.name]  # no temporary left behind
    _no_conversion(monkeypatch)
    second = _out(load_network(model, cdir))
    for a, b in zip(first, second):
        assert torch.equal(a, b)


@pytest.mark.parametrize("damage", ["truncate", "flip_payload_byte", "garbage"])
def test_corrupt_cache_is_rebuilt_not_trusted(model, tmp_path, caplog, damage):
    cdir = tmp_path / "cache"
    reference = _out(load_network(model, cdir))
    target = cache_path(model, _sha(model), cdir)
    blob = bytearray(target.read_bytes())
    if damage == "truncate":
        blob = blob[: len(blob) // 2]
    elif damage == "flip_payload_byte":
        blob[-1000] ^= 0x40  # inside a weight tensor: only the payload hash notices
    else:
        blob = bytearray(b"\x00" * 64)
    target.write_bytes(bytes(blob))
    with caplog.at_level(logging.WARNING, logger=LOG):
        rebuilt = _out(load_network(model, cdir))
    assert "not usable" in caplog.text and "rebuilding" in caplog.text
    for a, b in zip(reference, rebuilt):
        assert torch.equal(a, b)
    # and the rebuilt file is valid again
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOG):
        load_network(model, cdir)
    assert "not usable" not in caplog.text


def test_foreign_cache_written_for_another_model_is_rebuilt(model, tmp_path, caplog):
    """A cache file of another .tflite put under this file's name (its header names the
    other file's hash) must not give the other network."""
    cdir = tmp_path / "cache"
    other = tmp_path / "hand_landmark_lite.tflite"
    shutil.copy(model_files("lite")[1], other)
    load_network(other, cdir)
    foreign = cache_path(other, _sha(other), cdir)
    target = cache_path(model, _sha(model), cdir)
    shutil.copy(foreign, target)
    with caplog.at_level(logging.WARNING, logger=LOG):
        net = load_network(model, cdir)
    assert "another model file" in caplog.text
    assert [tuple(o.shape) for o in _out(net)] == [(2, 2016, 18), (2, 2016, 1)]


def test_cache_of_another_converter_version_is_rebuilt(model, tmp_path, caplog, monkeypatch):
    cdir = tmp_path / "cache"
    load_network(model, cdir)
    monkeypatch.setattr(cache_mod, "CONVERTER_VERSION", cache_mod.CONVERTER_VERSION + 1)
    with caplog.at_level(logging.WARNING, logger=LOG):
        load_network(model, cdir)
    assert "converter version" in caplog.text


def test_cache_follows_the_file_content_not_its_name(tmp_path):
    """Another model under the same file name gets its own entry and its own network."""
    cdir = tmp_path / "cache"
    path = tmp_path / "palm_detection.tflite"
    outs = {}
    for variant in ("lite", "full", "lite"):
        shutil.copy(model_files(variant)[0], path)
        out = _out(load_network(path, cdir))
        if variant in outs:
            assert all(torch.equal(a, b) for a, b in zip(outs[variant], out))
        outs[variant] = out
    assert not torch.allclose(outs["lite"][0], outs["full"][0])
    assert len(list(cdir.glob("palm_detection.*.pt"))) == 2


def test_write_is_atomic_a_failed_write_leaves_nothing(model, tmp_path, monkeypatch):
    cdir = tmp_path / "cache"

    def crash(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", crash)
    net = load_network(model, cdir)  # still works, only uncached
    assert len(_out(net)) == 2
    assert list(cdir.iterdir()) == []  # neither the target nor a temporary file


def test_unwritable_cache_dir_still_converts(model, tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the cache directory should be")
    net = load_network(model, blocker / "cache")
    assert len(_out(net)) == 2


def test_default_cache_dir_env_and_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "hand_mesh_ros"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == tmp_path.__class__(os.path.expanduser("~")) / ".cache" / "hand_mesh_ros"
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"


def test_cache_holds_no_pickled_code(model, tmp_path):
    """The payload is read with weights_only=True: a pickle of an arbitrary object is refused
    (and then rebuilt), never executed."""
    import io
    import json
    cdir = tmp_path / "cache"
    load_network(model, cdir)
    target = cache_path(model, _sha(model), cdir)
    payload = io.BytesIO()
    torch.save({"spec": "{}", "state": {}, "evil": os.getcwd}, payload)  # a function: never unpickled
    payload = payload.getvalue()
    header = json.dumps({"source_sha256": _sha(model), "converter_version": cache_mod.CONVERTER_VERSION,
                         "payload_sha256": hashlib.sha256(payload).hexdigest(),
                         "payload_bytes": len(payload)}).encode()
    target.write_bytes(cache_mod._MAGIC + len(header).to_bytes(4, "little") + header + payload)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        cache_mod._decode(target.read_bytes(), _sha(model))
    assert len(_out(load_network(model, cdir))) == 2
