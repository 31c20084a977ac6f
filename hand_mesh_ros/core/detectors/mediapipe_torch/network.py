"""Build a torch module from a converted network description (``convert.NetworkSpec``).

The module is a ``torch.fx.GraphModule``: straight-line code with one call per layer, no
interpreter loop, so it can be moved to any device, put in channels-last memory format, and
given to ``torch.compile``. Its input is the image batch NCHW ``(N, C, H, W)`` float32 (the
TFLite model's NHWC input, transposed); its outputs are the TFLite outputs, in order, with
batch ``N`` in place of 1.

Layer kinds (attributes as written by ``convert.py``):
``conv2d`` (``nn.Conv2d``; asymmetric padding as an explicit zero pad), ``maxpool2d``
(``-inf`` pad), ``prelu`` (``nn.PReLU``, per channel) / ``prelu_full``, ``linear``
(``nn.Linear``, optional NHWC flatten), ``add``, ``concat``, ``pad``, ``reshape`` (NCHW <-> NHWC
around it), ``resize_bilinear``, ``mean``, ``activation``, ``cast``, ``const``.
"""
from __future__ import annotations

import operator
from typing import Callable, Dict, List, Optional

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

from .convert import ConversionError, NetworkSpec

def _relu_n1_to_1(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(x, -1.0, 1.0)


_ACTIVATIONS: Dict[str, Callable] = {"relu": F.relu, "relu6": F.relu6, "tanh": torch.tanh,
                                     "sigmoid": torch.sigmoid, "relu_n1_to_1": _relu_n1_to_1}


class _Builder:
    def __init__(self, spec: NetworkSpec):
        self.spec = spec
        self.root = nn.Module()
        self.graph = fx.Graph()
        self.env: Dict[int, fx.Node] = {}

    def act(self, node: fx.Node, name: Optional[str]) -> fx.Node:
        if name is None:
            return node
        if name not in _ACTIVATIONS:
            raise ConversionError(f"unknown activation {name!r}")
        return self.graph.call_function(_ACTIVATIONS[name], (node,))

    def module(self, name: str, mod: nn.Module, x: fx.Node) -> fx.Node:
        self.root.add_module(name, mod)
        return self.graph.call_module(name, (x,))

    def layer(self, i: int, L: dict) -> fx.Node:
        g, name, kind = self.graph, f"l{i}", L["kind"]
        ins: List[fx.Node] = [self.env[t] for t in L["inputs"]]
        if kind == "const":
            self.root.register_buffer(name + "_value", torch.zeros(L["shape"]))
            return g.get_attr(name + "_value")
        x = ins[0] if ins else None
        if kind == "conv2d":
            left, right, top, bottom = L["padding"]
            symmetric = left == right and top == bottom
            if not symmetric:
                x = g.call_function(F.pad, (x, (left, right, top, bottom)))
            conv = nn.Conv2d(L["in_channels"], L["out_channels"], tuple(L["kernel"]), tuple(L["stride"]),
                             padding=(top, left) if symmetric else 0, dilation=tuple(L["dilation"]),
                             groups=L["groups"], bias=True)
            return self.act(self.module(name, conv, x), L["activation"])
        if kind == "maxpool2d":
            left, right, top, bottom = L["padding"]
            if any(L["padding"]):
                x = g.call_function(F.pad, (x, (left, right, top, bottom)), {"value": float("-inf")})
            y = g.call_function(F.max_pool2d, (x, tuple(L["kernel"]), tuple(L["stride"])))
            return self.act(y, L["activation"])
        if kind == "prelu":
            return self.module(name, nn.PReLU(L["channels"]), x)
        if kind == "prelu_full":
            self.root.register_buffer(name + "_alpha", torch.zeros(L["shape"]))
            alpha = g.get_attr(name + "_alpha")
            neg = g.call_function(operator.mul, (x, alpha))
            cond = g.call_function(operator.ge, (x, 0.0))
            return g.call_function(torch.where, (cond, x, neg))
        if kind == "linear":
            if L["flatten"]:
                if L["from_nchw"]:
                    x = g.call_method("permute", (x, 0, 2, 3, 1))
                x = g.call_method("reshape", (x, -1, L["in_features"]))
            lin = nn.Linear(L["in_features"], L["out_features"], bias=True)
            return self.act(self.module(name, lin, x), L["activation"])
        if kind == "add":
            return self.act(g.call_function(operator.add, (ins[0], ins[1])), L["activation"])
        if kind == "concat":
            return self.act(g.call_function(torch.cat, (tuple(ins), L["dim"])), L["activation"])
        if kind == "pad":
            return g.call_function(F.pad, (x, tuple(L["pad"])))
        if kind == "reshape":
            if L["from_nchw"]:
                x = g.call_method("permute", (x, 0, 2, 3, 1))
            y = g.call_method("reshape", (x, *L["shape"]))
            return g.call_method("permute", (y, 0, 3, 1, 2)) if L["to_nchw"] else y
        if kind == "resize_bilinear":
            return g.call_function(F.interpolate, (x,), {"size": tuple(L["size"]), "mode": "bilinear",
                                                         "align_corners": L["align_corners"]})
        if kind == "mean":
            return g.call_function(torch.mean, (x,), {"dim": tuple(L["dims"]), "keepdim": L["keepdim"]})
        if kind == "activation":
            return self.act(x, L["activation"])
        if kind == "cast":
            return g.call_method("float", (x,))
        raise ConversionError(f"operator {L.get('op')} (#{L.get('op_index')}): unknown layer kind {kind!r}")

    def build(self) -> fx.GraphModule:
        for k, t in enumerate(self.spec.inputs):
            self.env[t] = self.graph.placeholder(f"input_{k}" if k else "x")
        for i, L in enumerate(self.spec.layers):
            self.env[L["output"]] = self.layer(i, L)
        outs = []
        for t, nhwc in zip(self.spec.outputs, self.spec.output_nhwc):
            node = self.env[t]
            outs.append(self.graph.call_method("permute", (node, 0, 2, 3, 1)) if nhwc else node)
        self.graph.output(tuple(outs))
        return fx.GraphModule(self.root, self.graph, class_name="TFLiteNetwork")


def build_network(spec: NetworkSpec, state_dict: Optional[Dict[str, torch.Tensor]] = None) -> fx.GraphModule:
    """A module computing ``spec``, in eval mode, with gradients off.

    Args:
        spec: from ``convert.convert_graph`` (or the cache).
        state_dict: weights keyed as the module names them; default: ``spec.weights``
            mapped to the module's parameter names.

    Raises:
        ConversionError: an unknown layer kind, or weights that do not fit the layers
            (missing / unexpected keys, wrong shapes).
    """
    module = _Builder(spec).build()
    if state_dict is None:
        state_dict = weights_to_state_dict(spec)
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        raise ConversionError(f"weights do not fit the converted layers: {exc}") from exc
    module.eval()
    module.requires_grad_(False)
    return module


def weights_to_state_dict(spec: NetworkSpec) -> Dict[str, torch.Tensor]:
    """``spec.weights`` ("l<i>.weight" / "l<i>.bias" / "l<i>.value" / "l<i>.alpha") under the
    module's state-dict names."""
    out = {}
    for key, value in spec.weights.items():
        layer, name = key.split(".", 1)
        kind = spec.layers[int(layer[1:])]["kind"]
        target = f"{layer}_{name}" if kind in ("const", "prelu_full") else key
        out[target] = torch.from_numpy(value.copy())
    return out
