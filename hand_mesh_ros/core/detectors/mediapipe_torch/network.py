"""Build a torch module from a converted network description (``convert.NetworkSpec``).

The module is a ``torch.fx.GraphModule``: straight-line code with one call per layer, no
interpreter loop, so it can be moved to any device, put in channels-last memory format, and
given to ``torch.compile``. Its input is the image batch NCHW ``(N, C, H, W)`` float32 (the
TFLite model's NHWC input, transposed); its outputs are the TFLite outputs, in order, with
batch ``N`` in place of 1.

Layer kinds (attributes as written by ``convert.py``):
``conv2d`` (``nn.Conv2d``, or ``PointwiseConv2d`` for 1x1 stride-1 convolutions; asymmetric
padding as an explicit zero pad), ``maxpool2d``
(``-inf`` pad), ``prelu`` (``nn.PReLU``, per channel) / ``prelu_full``, ``linear``
(``BatchInvariantLinear``, optional NHWC flatten), ``add``, ``concat``, ``pad``, ``reshape`` (NCHW <-> NHWC
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


def _relu6_(x: torch.Tensor) -> torch.Tensor:
    return F.hardtanh_(x, 0.0, 6.0)


def _relu_n1_to_1_(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp_(x, -1.0, 1.0)


_ACTIVATIONS: Dict[str, Callable] = {"relu": F.relu, "relu6": F.relu6, "tanh": torch.tanh,
                                     "sigmoid": torch.sigmoid, "relu_n1_to_1": _relu_n1_to_1}
#: In-place forms, for activations fused into the layer that made their input (the only user).
_ACTIVATIONS_INPLACE: Dict[str, Callable] = {"relu": torch.relu_, "relu6": _relu6_, "tanh": torch.tanh_,
                                             "sigmoid": torch.sigmoid_, "relu_n1_to_1": _relu_n1_to_1_}


class PointwiseConv2d(nn.Conv2d):
    """A 1x1, stride-1, ungrouped convolution computed as one matrix product over the
    channels of the NHWC view (``F.linear``): on a channels-last input the views are free,
    and the product avoids the layout copies and single-thread fallback of a 1x1
    ``conv2d``. Same parameters and state dict as ``nn.Conv2d``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.reshape(self.out_channels, self.in_channels)
        return F.linear(x.permute(0, 2, 3, 1), weight, self.bias).permute(0, 3, 1, 2)


class BatchInvariantLinear(nn.Linear):
    """FULLY_CONNECTED, accumulated in float64 and rounded back: BLAS runs one row (a batch
    of 1) with other kernels than many rows, so in float32 a hand's result would depend on
    how many hands share its forward; in float64 both round to the same float32. These are
    the networks' last, small layers (<= 1152 x 63), so the cost is negligible."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.double(), self.weight.double(), self.bias.double()).to(x.dtype)


class _Builder:
    def __init__(self, spec: NetworkSpec):
        self.spec = spec
        self.root = nn.Module()
        self.graph = fx.Graph()
        self.env: Dict[int, fx.Node] = {}
        # how many layers (or graph outputs) read each tensor: a tensor with one reader that
        # a layer produced may be overwritten by that reader
        self.readers: Dict[int, int] = {}
        for L in spec.layers:
            for t in L["inputs"]:
                self.readers[t] = self.readers.get(t, 0) + 1
        for t in spec.outputs:
            self.readers[t] = self.readers.get(t, 0) + 1
        self.produced = {L["output"] for L in spec.layers if L["kind"] != "const"}
        self.reader_of = {t: L for L in spec.layers for t in L["inputs"]}
        #: channel pads folded into the add that reads them: tensor id -> (input node, pad)
        self.folded_pads: Dict[int, tuple] = {}

    def owned(self, tid: int) -> bool:
        """True if tensor ``tid`` is a layer's fresh result read only by the current layer."""
        return tid in self.produced and self.readers.get(tid, 0) == 1

    def foldable_channel_pad(self, L: dict) -> bool:
        """A zero pad of the channels only, read by one add whose other operand can take
        it in place: ``add(y, pad(x))`` becomes ``y[:, c0:c1] += x`` (MediaPipe's residual
        shortcut into a wider block: max-pool, channel pad, add)."""
        pad = L["pad"]
        if len(pad) != 6 or any(pad[:4]) or self.readers.get(L["output"], 0) != 1:
            return False
        add = self.reader_of.get(L["output"])
        if add is None or add["kind"] != "add":
            return False
        other = [t for t in add["inputs"] if t != L["output"]]
        return len(other) == 1 and self.owned(other[0]) and add["full_shape"][add["inputs"].index(other[0])]

    def act(self, node: fx.Node, name: Optional[str], fused: bool = True) -> fx.Node:
        """``name`` applied to ``node``; in place when fused (``node`` is a fresh result
        that nothing else reads)."""
        if name is None:
            return node
        table = _ACTIVATIONS_INPLACE if fused else _ACTIVATIONS
        if name not in table:
            raise ConversionError(f"unknown activation {name!r}")
        return self.graph.call_function(table[name], (node,))

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
            if left == right and top == bottom:
                padding = (top, left)
            else:  # TF SAME with stride 2 on an even size: one more after than before
                x = g.call_function(F.pad, (x, (left, right, top, bottom)))
                padding = (0, 0)
            pointwise = (L["kernel"] == [1, 1] and L["stride"] == [1, 1] and L["groups"] == 1
                         and not any(L["padding"]))
            conv = (PointwiseConv2d if pointwise else nn.Conv2d)(
                L["in_channels"], L["out_channels"], tuple(L["kernel"]), tuple(L["stride"]),
                padding=padding, dilation=tuple(L["dilation"]), groups=L["groups"], bias=True)
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
            lin = BatchInvariantLinear(L["in_features"], L["out_features"], bias=True)
            return self.act(self.module(name, lin, x), L["activation"])
        if kind == "add":
            folded = [t for t in L["inputs"] if t in self.folded_pads]
            if folded:
                src, pad = self.folded_pads.pop(folded[0])
                other = ins[1] if L["inputs"][0] == folded[0] else ins[0]
                c0, c1 = pad[4], pad[5]
                view = g.call_function(operator.getitem, (other, (slice(None), slice(c0, -c1 if c1 else None))))
                g.call_method("add_", (view, src))
                return self.act(other, L["activation"])
            # accumulate into an operand that has the result's shape and no other reader
            mine = [self.owned(t) and full for t, full in zip(L["inputs"], L["full_shape"])]
            if any(mine):
                first, second = (ins[0], ins[1]) if mine[0] else (ins[1], ins[0])
                y = g.call_method("add_", (first, second))
            else:
                y = g.call_function(operator.add, (ins[0], ins[1]))
            return self.act(y, L["activation"])
        if kind == "concat":
            return self.act(g.call_function(torch.cat, (tuple(ins), L["dim"])), L["activation"])
        if kind == "pad":
            if self.foldable_channel_pad(L):
                self.folded_pads[L["output"]] = (x, L["pad"])
                return x  # placeholder: the add reads the pad's input, never this node
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
        if kind == "activation":  # a layer of its own: its input may have other readers
            return self.act(x, L["activation"], fused=False)
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
