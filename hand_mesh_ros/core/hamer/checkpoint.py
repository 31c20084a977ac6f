"""Safe loading of a user's HaMeR checkpoint into our HaMeR model.

A HaMeR checkpoint is either the PyTorch Lightning ``.ckpt`` the reference releases (a dict whose
``'state_dict'`` entry holds the weights, next to training bookkeeping and the training config as
``hyper_parameters``) or a plain ``torch.save``-d state dict (``str -> Tensor``). Both are pickles,
and an ordinary ``torch.load`` / ``pickle.load`` of a pickle runs whatever callables it names, so
a downloaded checkpoint could run arbitrary code. We therefore only ever use
``torch.load(weights_only=True)``: PyTorch's restricted unpickler, which builds tensors, plain
containers and numbers and refuses every global that is not on an allow-list *before* calling it.

The allow-list (``ALLOWED_GLOBALS``), on top of what ``weights_only`` allows by itself (tensor
rebuild functions, storages, dtypes, ``OrderedDict``, ``torch.Size`` ...):

* inert stand-ins for the classes Lightning pickles inside ``hyper_parameters`` when the model was
  built from an OmegaConf config (what HaMeR's ``train.py`` does): ``omegaconf.dictconfig.
  DictConfig``, ``omegaconf.listconfig.ListConfig``, ``omegaconf.base.ContainerMetadata``,
  ``omegaconf.base.Metadata``, the value nodes ``omegaconf.nodes.{Any,String,Integer,Float,
  Boolean}Node`` and ``typing.Any`` (stored as a metadata type). Each is a fresh class registered
  under the original name; it only keeps the pickled state (``__setstate__``) and has no other
  behaviour, so omegaconf need not be installed and none of its code runs;
* ``yacs.config.CfgNode`` (HaMeR's configs may be yacs), mapped to ``collections.OrderedDict``:
  a CfgNode is a ``dict`` subclass whose items the unpickler only lets us put into an exact
  ``dict``/``OrderedDict``, and an OrderedDict also takes the CfgNode's attribute state;
* ``collections.defaultdict`` (omegaconf's resolver cache), and ``dict``, ``list``, ``int``,
  ``float``, ``str``, ``bool``: used as metadata types or trivially re-created by the pickle.

None of these can touch the file system, import modules or evaluate code. Everything else
(``os.system``, ``builtins.eval``/``exec``, any other class) is refused with a ``ValueError``
naming the global; it was not called. The config is not taken from the checkpoint: the model is
built from ``model_config.yaml``, and only the state dict is returned.
"""
from __future__ import annotations

import collections
import pickle
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

DEFAULT_IGNORE = ("discriminator.",)  # HaMeR's training-only adversarial prior; not built for inference


class _Inert:
    """Stand-in for a class pickled in a checkpoint's hyper-parameters: it keeps the pickled
    constructor arguments and state and does nothing else."""

    def __init__(self, *args):
        self._pickled_args = args

    def __setstate__(self, state):
        self._pickled_state = state


_STUBBED = (
    "omegaconf.dictconfig.DictConfig", "omegaconf.listconfig.ListConfig",
    "omegaconf.base.ContainerMetadata", "omegaconf.base.Metadata",
    "omegaconf.nodes.AnyNode", "omegaconf.nodes.StringNode", "omegaconf.nodes.IntegerNode",
    "omegaconf.nodes.FloatNode", "omegaconf.nodes.BooleanNode", "typing.Any",
)
ALLOWED_GLOBALS = [(type(name.rsplit(".", 1)[1], (_Inert,), {}), name) for name in _STUBBED] + [
    (OrderedDict, "yacs.config.CfgNode"),
    collections.defaultdict, dict, list, int, float, str, bool,
]

_REFUSED_GLOBAL = re.compile(r"GLOBAL (\S+) (?:was not an allowed global|whose module)")
_ZIP_MAGIC = b"PK\x03\x04"


def load_state_dict(path) -> "OrderedDict[str, torch.Tensor]":
    """Load the weights of a HaMeR checkpoint without running code from the file.

    ``path`` is a Lightning ``.ckpt`` (a dict with a ``'state_dict'`` entry, which is returned; the
    other entries are read through the allow-list above and dropped) or a plain state dict saved
    with ``torch.save``. Returns ``OrderedDict[str, Tensor]`` in the file's order, tensors on the CPU
    with their stored shapes and dtypes (HaMeR: float32 weights, the bool scalar ``initialized``,
    int64 MANO index buffers). Zip-format files (every ``torch.save`` since PyTorch 1.6) are
    memory-mapped (``mmap=True``), so a multi-GB ViT-H checkpoint is paged in from disk instead of
    being read into RAM first; tensors are only copied when loaded into the model.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        IsADirectoryError: ``path`` is a directory.
        ValueError: the file is empty, truncated or not a PyTorch checkpoint; its pickle references a
            global that is not on the allow-list (named in the message; it was not executed); or it
            holds no ``str -> Tensor`` state dict (the message says what it holds instead).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"HaMeR checkpoint not found: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"HaMeR checkpoint {path} is a directory; expected a .ckpt or .pt file")
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        raise ValueError(f"{path} is empty (0 bytes), not a readable PyTorch checkpoint (truncated or corrupt?)")
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=head == _ZIP_MAGIC)
    except pickle.UnpicklingError as e:
        msg = str(e)
        m = _REFUSED_GLOBAL.search(msg)
        if m:
            name = m.group(1) if "." in m.group(1) else f"builtins.{m.group(1)}"  # torch strips "builtins."
            raise ValueError(
                f"refused to load {path}: its pickle references {name!r}, which is not on the allow-list "
                "of safe globals, so the file was not loaded and that global was NOT executed. If you trust "
                "the file, convert it once: torch.save(torch.load(f, weights_only=False)['state_dict'], out)"
            ) from None
        detail = msg.split("WeightsUnpickler error:")[-1].split("Check the documentation")[0].strip()
        if detail.startswith("Unsupported operand"):
            detail += " (a pickle opcode the safe loader does not accept; nothing was executed)"
        raise ValueError(f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): {detail}") from None
    except Exception as e:  # noqa: BLE001 - zip/EOF/struct/... errors from a damaged file
        raise ValueError(
            f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): {type(e).__name__}: {e}"
        ) from None
    return _as_state_dict(obj, path)


def _describe(obj) -> str:
    if isinstance(obj, Mapping):
        keys = list(obj)
        return f"a {type(obj).__name__} with {len(keys)} entries (keys {keys[:5]}{' ...' if len(keys) > 5 else ''})"
    if isinstance(obj, (list, tuple)):
        return f"a {type(obj).__name__} of length {len(obj)}"
    return f"a {type(obj).__name__}"


def _as_state_dict(obj, path) -> "OrderedDict[str, torch.Tensor]":
    """The ``str -> Tensor`` state dict inside a loaded checkpoint object, or ValueError."""
    lightning = isinstance(obj, Mapping) and "state_dict" in obj
    sd = obj["state_dict"] if lightning else obj
    what = f"{path}'s 'state_dict' entry" if lightning else str(path)
    if not isinstance(sd, Mapping) or not sd or not any(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(
            f"{what} holds no tensor state dict: found {_describe(sd)}; expected a PyTorch Lightning "
            "checkpoint with a 'state_dict' entry or a plain state dict (str -> Tensor)"
        )
    bad = [f"{k!r} ({type(v).__name__})" for k, v in sd.items()
           if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(
            f"{what} is not a state dict of str -> Tensor: {len(bad)} bad entries, e.g. {', '.join(bad[:5])}"
        )
    if type(sd) is OrderedDict:
        return sd
    out = OrderedDict(sd)
    out._metadata = getattr(sd, "_metadata", None)
    return out


@dataclass
class KeyReport:
    """How a checkpoint's keys/shapes compare to ``model.state_dict()`` (ignored prefixes left out).

    ``missing``: in the model, not in the checkpoint; ``unexpected``: in the checkpoint, not in the
    model; ``shape_mismatch``: ``(key, checkpoint shape, model shape)``.
    """

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape_mismatch: list[tuple[str, tuple, tuple]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.shape_mismatch)


def compare_keys(state_dict: Mapping[str, torch.Tensor], model: nn.Module,
                 ignore_prefixes=DEFAULT_IGNORE) -> KeyReport:
    """Compare a checkpoint's keys and shapes with ``model.state_dict()``.

    Keys starting with one of ``ignore_prefixes`` (default: HaMeR's training-only
    ``discriminator.``) are skipped on both sides: neither missing nor unexpected.
    """
    ignore = tuple(ignore_prefixes)
    target = model.state_dict()
    report = KeyReport()
    for k in target:
        if k not in state_dict and not k.startswith(ignore):
            report.missing.append(k)
    for k, v in state_dict.items():
        if k.startswith(ignore):
            continue
        if k not in target:
            report.unexpected.append(k)
        elif tuple(v.shape) != tuple(target[k].shape):
            report.shape_mismatch.append((k, tuple(v.shape), tuple(target[k].shape)))
    return report


def _listing(title: str, items: list[str], limit: int = 10) -> str:
    more = f"\n    ... and {len(items) - limit} more" if len(items) > limit else ""
    return f"  {len(items)} {title}:\n" + "\n".join(f"    {s}" for s in items[:limit]) + more


def load_into(model: nn.Module, state_dict: Mapping[str, torch.Tensor],
              ignore_prefixes=DEFAULT_IGNORE, path=None) -> KeyReport:
    """Copy a checkpoint's tensors into ``model`` after checking that they fit exactly.

    Every model key (outside ``ignore_prefixes``) must be in the checkpoint with the same shape,
    and the checkpoint must hold no other keys (outside ``ignore_prefixes``). Values are copied
    into the model's existing parameters and buffers, keeping the model's dtype and device (float32
    weights, bool ``initialized``, int64 index buffers load as such). Returns the (clean)
    ``KeyReport``.

    Raises:
        ValueError: keys are missing, unexpected or of another shape; the message names ``path``
            (when given) and up to 10 keys of each kind, e.g.
            ``backbone.pos_embed: checkpoint (1, 193, 96) vs model (1, 193, 1280)``.
    """
    report = compare_keys(state_dict, model, ignore_prefixes)
    where = str(path) if path is not None else "checkpoint"
    if not report.ok:
        parts = [f"{where} does not fit the model: it looks like a checkpoint for a different architecture "
                 "or model_config.yaml (e.g. another ViT size or decoder depth)"]
        if report.missing:
            parts.append(_listing("missing keys (in the model, not in the checkpoint)", report.missing))
        if report.unexpected:
            parts.append(_listing("unexpected keys (in the checkpoint, not in the model)", report.unexpected))
        if report.shape_mismatch:
            parts.append(_listing("shape mismatches", [
                f"{k}: checkpoint {c} vs model {m}" for k, c, m in report.shape_mismatch]))
        raise ValueError("\n".join(parts))
    ignore = tuple(ignore_prefixes)
    wanted = OrderedDict((k, v) for k, v in state_dict.items() if not k.startswith(ignore))
    wanted._metadata = getattr(state_dict, "_metadata", None)
    result = model.load_state_dict(wanted, strict=False)
    if result.unexpected_keys or any(not k.startswith(ignore) for k in result.missing_keys):
        raise RuntimeError(f"{where}: load_state_dict left keys out after the check: {result}")
    return report
