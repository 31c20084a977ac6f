"""Safe loading of HaMeR checkpoints (hand_mesh_ros.core.hamer.checkpoint)."""
import ast
import builtins
import os
import pickle
import sys
import types
from collections import OrderedDict

import pytest
import torch
from torch import nn

from hand_mesh_ros.core.hamer import checkpoint as ckpt_mod
from hand_mesh_ros.core.hamer.checkpoint import KeyReport, compare_keys, load_into, load_state_dict


def _keys_tiny(golden):
    """keys_tiny.txt -> OrderedDict key -> (shape, dtype)."""
    out = OrderedDict()
    for line in (golden / "keys_tiny.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape, dtype, numel = line.split("\t")
            out[key] = (tuple(ast.literal_eval(shape)), getattr(torch, dtype))
    return out


@pytest.fixture
def load_spy(monkeypatch):
    """Records the keyword arguments of every torch.load call."""
    calls, real = [], torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    return calls


# ---------------------------------------------------------------- golden files
def test_lightning_ckpt_matches_keys_tiny(golden_hamer, load_spy):
    path = golden_hamer / "tiny_hamer.ckpt"
    with pytest.raises(pickle.UnpicklingError, match="omegaconf"):  # needs the allow-list
        torch.load(path, map_location="cpu", weights_only=True)
    load_spy.clear()
    sd = load_state_dict(path)
    assert load_spy == [dict(map_location="cpu", weights_only=True, mmap=True)]
    expected = _keys_tiny(golden_hamer)
    assert len(expected) == 135 and isinstance(sd, OrderedDict)
    assert list(sd) == list(expected)
    for key, (shape, dtype) in expected.items():
        assert tuple(sd[key].shape) == shape and sd[key].dtype == dtype, key
        assert sd[key].device.type == "cpu"
    assert sd["initialized"].dtype == torch.bool and sd["mano.faces_tensor"].dtype == torch.int64
    assert "omegaconf" not in sys.modules and "yacs" not in sys.modules
    assert not any(isinstance(g, tuple) and g[1].startswith("omegaconf")
                   for g in torch.serialization.get_safe_globals())  # allow-list only during the load


def test_plain_state_dict_agrees_with_ckpt(golden_hamer):
    full = load_state_dict(golden_hamer / "tiny_hamer.ckpt")
    plain = load_state_dict(golden_hamer / "tiny_hamer_state_dict.pt")
    assert list(plain) == [k for k in full if not k.startswith("discriminator.")]
    assert len(plain) == 89 and len(full) - len(plain) == 46
    for key, value in plain.items():
        assert value.dtype == full[key].dtype and torch.equal(value, full[key]), key


# ---------------------------------------------------------------- files built here
def _toy_state():
    g = torch.Generator().manual_seed(0)
    return OrderedDict([
        ("initialized", torch.tensor(True)),
        ("layer.weight", torch.randn(4, 3, generator=g)),
        ("layer.bias", torch.randn(4, generator=g)),
        ("norm.weight", torch.randn(4, generator=g)),
        ("norm.bias", torch.randn(4, generator=g)),
        ("index", torch.tensor([3, 1, 2], dtype=torch.int64)),
    ])


def _assert_same(a, b, ordered=False):
    assert (list(a) == list(b)) if ordered else (sorted(a) == sorted(b))
    for k in a:
        assert a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("zip_format", [True, False])
def test_plain_state_dict_saved_here(tmp_path, load_spy, zip_format):
    path = tmp_path / "weights.pt"
    torch.save(_toy_state(), path, _use_new_zipfile_serialization=zip_format)
    sd = load_state_dict(path)
    _assert_same(sd, _toy_state(), ordered=True)
    assert load_spy[-1]["mmap"] is zip_format and load_spy[-1]["weights_only"] is True


def test_lightning_style_dict_saved_here(tmp_path):
    path = tmp_path / "model.ckpt"
    torch.save({
        "epoch": 3, "global_step": 1200, "pytorch-lightning_version": "2.6.6",
        "state_dict": _toy_state(),
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 3}}, "done": False}},
        "callbacks": {}, "optimizer_states": [{"param_groups": [{"lr": 1e-5, "betas": (0.9, 0.999)}]}],
        "lr_schedulers": [], "hparams_name": "kwargs", "hyper_parameters": {"lr": 1e-5, "tags": ["a", 1.5, None]},
    }, path)
    _assert_same(load_state_dict(path), _toy_state(), ordered=True)


def test_yacs_cfgnode_hyper_parameters_load_without_yacs(tmp_path, monkeypatch):
    """A checkpoint whose hparams hold a yacs CfgNode (a dict subclass with attribute state)."""
    class CfgNode(dict):
        def __init__(self, d=None):
            super().__init__(d or {})
            self.__dict__["__immutable__"] = False
            self.__dict__["__deprecated_keys__"] = set()

    CfgNode.__module__, CfgNode.__qualname__ = "yacs.config", "CfgNode"
    yacs, config = types.ModuleType("yacs"), types.ModuleType("yacs.config")
    config.CfgNode, yacs.config = CfgNode, config
    monkeypatch.setitem(sys.modules, "yacs", yacs)
    monkeypatch.setitem(sys.modules, "yacs.config", config)
    path = tmp_path / "yacs.ckpt"
    cfg = CfgNode({"MODEL": CfgNode({"IMAGE_SIZE": 256, "IMAGE_MEAN": [0.485, 0.456, 0.406]})})
    torch.save({"state_dict": _toy_state(), "hyper_parameters": {"cfg": cfg}}, path)
    monkeypatch.delitem(sys.modules, "yacs.config")
    monkeypatch.delitem(sys.modules, "yacs")
    _assert_same(load_state_dict(path), _toy_state(), ordered=True)


# ---------------------------------------------------------------- unreadable files
def _bad_file(kind, tmp_path, golden):
    if kind == "missing":
        return tmp_path / "nope.ckpt", FileNotFoundError, "not found"
    if kind == "directory":
        return tmp_path, IsADirectoryError, "directory"
    path = tmp_path / f"{kind}.ckpt"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        data = (golden / "tiny_hamer.ckpt").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(os.urandom(4096))
    return path, ValueError, r"not a readable PyTorch checkpoint \(truncated or corrupt\?\)"


@pytest.mark.parametrize("kind", ["missing", "directory", "empty", "truncated", "random"])
def test_unreadable_file(tmp_path, golden_hamer, kind):
    path, error, message = _bad_file(kind, tmp_path, golden_hamer)
    with pytest.raises(error, match=message) as info:
        load_state_dict(path)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------- hostile pickles
class _Payload:
    """Unpickling this calls func(arg); func and arg chosen to create a marker file."""

    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


def _payload(name, marker):
    if name == "system":
        return _Payload(os.system, f"touch '{marker}'")
    return _Payload(builtins.exec, f"open({str(marker)!r}, 'w').close()")


@pytest.mark.parametrize("container", ["zip", "legacy_pickle"])
@pytest.mark.parametrize("name, global_name", [("system", f"{os.name}.system"), ("exec", "builtins.exec")])
def test_hostile_pickle_is_refused_and_not_run(tmp_path, container, name, global_name):
    control = tmp_path / "control_marker"  # the payload is live: plain pickle runs it
    pickle.loads(pickle.dumps(_payload(name, control), protocol=2))
    assert control.exists()

    marker, path = tmp_path / "pwned", tmp_path / "hostile.ckpt"
    payload = _payload(name, marker)
    if container == "zip":  # a Lightning-looking checkpoint with the payload in its hparams
        torch.save({"state_dict": _toy_state(), "hyper_parameters": {"cfg": payload}}, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(ValueError, match=rf"{global_name}.*not on the allow-list") as info:
        load_state_dict(path)
    assert str(path) in str(info.value) and "NOT executed" in str(info.value)
    assert not marker.exists()


def test_class_not_on_allow_list_is_refused(tmp_path):
    import fractions
    path = tmp_path / "fraction.pt"
    torch.save({"state_dict": _toy_state(), "hyper_parameters": {"x": fractions.Fraction(1, 3)}}, path)
    with pytest.raises(ValueError, match=r"'fractions\.Fraction'.*NOT executed"):
        load_state_dict(path)


# ---------------------------------------------------------------- loads, but no state dict
@pytest.mark.parametrize("content, message", [
    ({"a": 1, "b": 2}, r"holds no tensor state dict: found a dict with 2 entries"),
    ([torch.zeros(2)], r"holds no tensor state dict: found a list of length 1"),
    ({}, r"holds no tensor state dict: found a dict with 0 entries"),
    ({"state_dict": [1, 2]}, r"'state_dict' entry holds no tensor state dict: found a list"),
    ({"w": torch.zeros(2), "step": 3}, r"not a state dict of str -> Tensor: 1 bad entries, e.g. 'step' \(int\)"),
])
def test_no_tensor_state_dict(tmp_path, content, message):
    path = tmp_path / "odd.pt"
    torch.save(content, path)
    with pytest.raises(ValueError, match=message) as info:
        load_state_dict(path)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------- load_into
class Toy(nn.Module):
    def __init__(self, width=4, discriminator=False):
        super().__init__()
        self.register_buffer("initialized", torch.tensor(False))
        self.layer = nn.Linear(3, width)
        self.norm = nn.LayerNorm(width)
        self.register_buffer("index", torch.zeros(3, dtype=torch.int64))
        if discriminator:
            self.discriminator = nn.Linear(2, 1)


def test_load_into_exact_keys():
    model, state = Toy(), _toy_state()
    report = load_into(model, state, path="toy.ckpt")
    assert report == KeyReport() and report.ok
    _assert_same(model.state_dict(), state)
    assert model.initialized.dtype == torch.bool and model.index.dtype == torch.int64


def test_load_into_reports_missing_unexpected_and_shapes():
    state = _toy_state()
    del state["layer.bias"]
    state["extra.weight"] = torch.zeros(2)
    state["norm.weight"] = torch.zeros(5)
    model = Toy()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = compare_keys(state, model)
    assert report.missing == ["layer.bias"] and report.unexpected == ["extra.weight"]
    assert report.shape_mismatch == [("norm.weight", (5,), (4,))]
    with pytest.raises(ValueError) as info:
        load_into(model, state, path="/data/hamer.ckpt")
    text = str(info.value)
    for piece in ("/data/hamer.ckpt", "different architecture", "1 missing keys", "layer.bias",
                  "1 unexpected keys", "extra.weight", "norm.weight: checkpoint (5,) vs model (4,)"):
        assert piece in text, piece
    for k, v in model.state_dict().items():  # nothing was copied
        assert torch.equal(v, before[k]), k


def test_load_into_lists_at_most_ten_keys():
    state = _toy_state()
    state.update({f"blocks.{i}.weight": torch.zeros(1) for i in range(13)})
    with pytest.raises(ValueError, match=r"13 unexpected keys[\s\S]*blocks\.9\.weight\n\s+\.\.\. and 3 more"):
        load_into(Toy(), state)


def test_load_into_ignores_discriminator():
    state = _toy_state()
    state["discriminator.bone.weight"] = torch.zeros(7, 7)  # training-only key, not built here
    model = Toy()
    assert load_into(model, state).ok
    _assert_same(model.state_dict(), _toy_state())
    model = Toy(discriminator=True)  # and a model that has one, with a checkpoint that has none
    assert compare_keys(_toy_state(), model).ok and load_into(model, _toy_state()).ok
    with pytest.raises(ValueError, match="discriminator.weight"):
        load_into(Toy(discriminator=True), _toy_state(), ignore_prefixes=())


def test_golden_state_dict_loads_into_matching_module(golden_hamer):
    """The real key set (bool, int64, float32 buffers) loads strictly into a module built to match."""
    sd = load_state_dict(golden_hamer / "tiny_hamer.ckpt")
    model = nn.Module()
    for key, value in sd.items():
        if not key.startswith("discriminator."):
            model.register_buffer(key.replace(".", "__"), torch.zeros_like(value))
    renamed = OrderedDict((k.replace(".", "__"), v) for k, v in sd.items() if not k.startswith("discriminator."))
    renamed["discriminator.x"] = torch.zeros(1)
    assert load_into(model, renamed, path="tiny_hamer.ckpt").ok
    for key, value in model.state_dict().items():
        assert value.dtype == renamed[key].dtype and torch.equal(value, renamed[key]), key
    assert ckpt_mod.DEFAULT_IGNORE == ("discriminator.",)
