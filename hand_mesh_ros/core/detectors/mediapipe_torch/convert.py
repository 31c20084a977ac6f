"""Translate a TFLite graph (``tflite_reader.Graph``) into a torch network description.

The result, ``NetworkSpec``, is plain data: a list of layers in execution order with their
attributes already in torch terms (NCHW layout, torch padding order, torch weight layouts)
plus the weights as float32 arrays. ``network.build_network`` turns it into a module; the
cache (``cache.py``) stores it so the flatbuffer is parsed only once per file.

Layout: every 4-D activation is kept NCHW (TFLite is NHWC), so axis-dependent operators
(RESHAPE, CONCATENATION, MEAN, PAD, FULLY_CONNECTED on a 4-D input) are translated, and 4-D
constants are permuted. Batch: TFLite shapes have batch 1; the network runs any batch N,
so RESHAPE keeps dimension 0 as the batch.

Padding: TFLite ``SAME`` pads ``total = max((ceil(in/s) - 1) s + (k - 1) d + 1 - in, 0)``
with ``total // 2`` before and the rest after, which is asymmetric for e.g. a 5x5 stride-2
convolution on an even input (1 before, 2 after); torch's symmetric ``padding`` is used only
where both sides agree, an explicit pad otherwise (``-inf`` for max pooling, which TFLite's
``SAME`` pooling ignores).

Operators: ADD, CONCATENATION, CONV_2D, DEPTHWISE_CONV_2D, DEQUANTIZE (float16 / int8
constants folded to float32; on activations a cast), FULLY_CONNECTED, LOGISTIC, MAX_POOL_2D,
MEAN, PAD, PRELU, RELU, RELU6, RESHAPE, RESIZE_BILINEAR; fused activations NONE, RELU,
RELU_N1_TO_1, RELU6, TANH. Anything else raises ``UnsupportedOperatorError`` naming it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .tflite_reader import Graph, Operator

#: Version of the layer description written by this converter; a cache file written by
#: another version is rebuilt. Bump it whenever ``NetworkSpec`` or a layer kind changes.
CONVERTER_VERSION = 1
#: TFLite operators this converter translates.
SUPPORTED_OPERATORS = ("ADD", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEQUANTIZE",
                       "FULLY_CONNECTED", "LOGISTIC", "MAX_POOL_2D", "MEAN", "PAD", "PRELU", "RELU",
                       "RELU6", "RESHAPE", "RESIZE_BILINEAR")
#: TFLite ActivationFunctionType -> activation name used in layer specs.
ACTIVATIONS = {0: None, 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "tanh"}
_SAME, _VALID = 0, 1
#: NHWC axis -> NCHW axis for 4-D tensors.
_NHWC_TO_NCHW_AXIS = (0, 2, 3, 1)


class ConversionError(ValueError):
    """The TFLite graph cannot be translated; the message names the operator."""


class UnsupportedOperatorError(ConversionError):
    """An operator (or an attribute of one) this converter does not implement."""


@dataclass
class NetworkSpec:
    """A converted network: layers in execution order and their float32 weights.

    Attributes:
        layers: one dict per layer: ``kind``, ``inputs`` (tensor ids), ``output`` (tensor
            id) and the kind's attributes (see ``network.py``).
        inputs: graph input tensor ids; ``input_shapes`` their TFLite (NHWC) shapes.
        outputs: graph output tensor ids; ``output_names`` their TFLite names
            (``Identity``, ``Identity_1``, ...); ``output_nhwc``: 4-D outputs permuted back to NHWC.
        weights: ``"l<layer>.<name>"`` -> float32 array in torch layout.
    """

    layers: List[dict]
    inputs: List[int]
    input_shapes: List[List[int]]
    outputs: List[int]
    output_names: List[str]
    output_nhwc: List[bool]
    weights: Dict[str, np.ndarray] = field(default_factory=dict)

    def describe(self) -> dict:
        """Everything but the weights, as JSON-serialisable data."""
        return {"layers": self.layers, "inputs": self.inputs, "input_shapes": self.input_shapes,
                "outputs": self.outputs, "output_names": self.output_names, "output_nhwc": self.output_nhwc}


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> Tuple[int, int]:
    """TFLite ``SAME`` padding (before, after) of one spatial dimension of length ``size``."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _nhwc_const_to_nchw(value: np.ndarray) -> np.ndarray:
    """A constant broadcast against a 4-D NHWC activation, re-laid for the NCHW one."""
    v = value.reshape((1,) * (4 - value.ndim) + value.shape) if value.ndim < 4 else value
    return np.ascontiguousarray(v.transpose(0, 3, 1, 2))


class _Converter:
    def __init__(self, graph: Graph):
        self.g = graph
        self.const: Dict[int, np.ndarray] = {
            t.index: t.data for t in graph.tensors if t.data is not None}
        self.layers: List[dict] = []
        self.weights: Dict[str, np.ndarray] = {}

    # -- helpers ------------------------------------------------------------------
    def fail(self, op: Operator, why: str, unsupported: bool = False) -> None:
        cls = UnsupportedOperatorError if unsupported else ConversionError
        raise cls(f"operator {op.opcode} (#{op.index}): {why}")

    def shape(self, tid: int) -> Tuple[int, ...]:
        return self.g.tensors[tid].shape

    def rank(self, tid: int) -> int:
        return len(self.shape(tid))

    def constant(self, op: Operator, tid: int, what: str) -> np.ndarray:
        if tid not in self.const:
            self.fail(op, f"{what} must be a constant tensor", unsupported=True)
        return self.const[tid]

    def float_constant(self, op: Operator, tid: int, what: str) -> np.ndarray:
        value = self.constant(op, tid, what)
        if value.dtype not in (np.float32, np.float16):
            self.fail(op, f"{what} is {value.dtype} (quantized weights are not supported)", unsupported=True)
        return value.astype(np.float32)

    def add_layer(self, op: Operator, kind: str, inputs: Sequence[int], weights: Optional[dict] = None,
                  **attrs) -> None:
        if len(op.outputs) != 1:
            self.fail(op, f"expected one output, got {len(op.outputs)}")
        idx = len(self.layers)
        self.layers.append(dict(kind=kind, inputs=list(inputs), output=op.outputs[0], op=op.opcode,
                                op_index=op.index, **attrs))
        for name, value in (weights or {}).items():
            self.weights[f"l{idx}.{name}"] = np.ascontiguousarray(value, dtype=np.float32)

    def activation_input(self, op: Operator, tid: int) -> int:
        """``tid`` as a layer input: activations as they are, constants become a const layer."""
        if tid not in self.const:
            return tid
        value = self.const[tid].astype(np.float32)
        out_rank = self.rank(op.outputs[0])
        if out_rank == 4:
            value = _nhwc_const_to_nchw(value)
        const_id = -1000 - len(self.layers)  # synthetic tensor id, never a TFLite one
        self.layers.append(dict(kind="const", inputs=[], output=const_id, op=op.opcode, op_index=op.index,
                                shape=list(value.shape)))
        self.weights[f"l{len(self.layers) - 1}.value"] = np.ascontiguousarray(value)
        return const_id

    def activation(self, op: Operator) -> Optional[str]:
        code = op.options.get("activation", 0)
        if code not in ACTIVATIONS:
            self.fail(op, f"fused activation {code} is not supported", unsupported=True)
        return ACTIVATIONS[code]

    def spatial_padding(self, op: Operator, x: int, kh: int, kw: int, sh: int, sw: int,
                        dh: int = 1, dw: int = 1) -> List[int]:
        """[left, right, top, bottom] for the op's padding mode."""
        if op.options.get("padding") == _VALID:
            return [0, 0, 0, 0]
        if op.options.get("padding") != _SAME:
            self.fail(op, f"padding mode {op.options.get('padding')} is not supported", unsupported=True)
        _, h, w, _ = self.shape(x)
        top, bottom = same_padding(h, kh, sh, dh)
        left, right = same_padding(w, kw, sw, dw)
        return [left, right, top, bottom]

    def batch_preserved(self, op: Operator, *tids: int) -> None:
        for t in tids:
            s = self.shape(t)
            if not s or s[0] != 1:
                self.fail(op, f"tensor {self.g.tensors[t].name!r} of shape {list(s)} does not keep batch 1 "
                              "in dimension 0", unsupported=True)

    # -- operators ----------------------------------------------------------------
    def op_DEQUANTIZE(self, op: Operator) -> None:
        src = op.inputs[0]
        t = self.g.tensors[src]
        if src in self.const:
            value = self.const[src]
            if value.dtype == np.float16:
                value = value.astype(np.float32)
            elif t.scale:
                scale = np.asarray(t.scale, np.float32)
                zero = np.asarray(t.zero_point or (0,) * len(t.scale), np.float32)
                if scale.size > 1:  # per-axis quantization of dimension 0 (TFLite weights)
                    scale = scale.reshape((-1,) + (1,) * (value.ndim - 1))
                    zero = zero.reshape(scale.shape)
                value = (value.astype(np.float32) - zero) * scale
            else:
                self.fail(op, f"constant of type {value.dtype} without quantization parameters",
                          unsupported=True)
            self.const[op.outputs[0]] = value.astype(np.float32)
            return
        if t.scale:
            self.fail(op, "dequantizing a quantized activation is not supported", unsupported=True)
        self.add_layer(op, "cast", [src])

    def op_CONV_2D(self, op: Operator, depthwise: bool = False) -> None:
        x, w_id = op.inputs[0], op.inputs[1]
        b_id = op.inputs[2] if len(op.inputs) > 2 else -1
        if self.rank(x) != 4:
            self.fail(op, f"input of rank {self.rank(x)}, expected 4 (NHWC)")
        w = self.float_constant(op, w_id, "filter")
        o = op.options
        sh, sw, dh, dw = o["stride_h"], o["stride_w"], o.get("dilation_h", 1), o.get("dilation_w", 1)
        cin = self.shape(x)[3]
        if depthwise:  # filter [1, kh, kw, cin * multiplier]
            kh, kw, cout = w.shape[1], w.shape[2], w.shape[3]
            weight = w.transpose(3, 0, 1, 2)  # [cout, 1, kh, kw]
            groups = cin
            if cout % cin:
                self.fail(op, f"{cout} output channels are not a multiple of {cin} input channels")
        else:  # filter [cout, kh, kw, cin / groups]
            cout, kh, kw, cin_g = w.shape
            weight = w.transpose(0, 3, 1, 2)
            if cin % cin_g:
                self.fail(op, f"{cin} input channels are not a multiple of the filter's {cin_g}")
            groups = cin // cin_g
        bias = self.float_constant(op, b_id, "bias") if b_id >= 0 else np.zeros(cout, np.float32)
        pad = self.spatial_padding(op, x, kh, kw, sh, sw, dh, dw)
        self.add_layer(op, "conv2d", [x], {"weight": weight, "bias": bias.reshape(cout)},
                       in_channels=cin, out_channels=cout, kernel=[kh, kw], stride=[sh, sw],
                       dilation=[dh, dw], groups=groups, padding=pad, activation=self.activation(op))

    def op_DEPTHWISE_CONV_2D(self, op: Operator) -> None:
        self.op_CONV_2D(op, depthwise=True)

    def op_MAX_POOL_2D(self, op: Operator) -> None:
        x = op.inputs[0]
        o = op.options
        kh, kw, sh, sw = o["filter_h"], o["filter_w"], o["stride_h"], o["stride_w"]
        pad = self.spatial_padding(op, x, kh, kw, sh, sw)
        self.add_layer(op, "maxpool2d", [x], kernel=[kh, kw], stride=[sh, sw], padding=pad,
                       activation=self.activation(op))

    def op_ADD(self, op: Operator) -> None:
        if len(op.inputs) != 2:
            self.fail(op, f"expected 2 inputs, got {len(op.inputs)}")
        if all(t in self.const for t in op.inputs):
            self.const[op.outputs[0]] = self.const[op.inputs[0]].astype(np.float32) + self.const[op.inputs[1]]
            return
        ins = [self.activation_input(op, t) for t in op.inputs]
        out = list(self.shape(op.outputs[0]))
        self.add_layer(op, "add", ins, activation=self.activation(op),
                       full_shape=[list(self.shape(t)) == out for t in op.inputs])

    def op_PRELU(self, op: Operator) -> None:
        x, a = op.inputs
        alpha = self.float_constant(op, a, "alpha")
        rank = self.rank(x)
        if rank == 4:
            alpha = _nhwc_const_to_nchw(alpha)  # [1, C or 1, H or 1, W or 1]
        else:
            alpha = alpha.reshape((1,) * (rank - alpha.ndim) + alpha.shape)
        per_channel = rank >= 2 and all(d == 1 for i, d in enumerate(alpha.shape) if i != 1)
        if per_channel:
            self.add_layer(op, "prelu", [x], {"weight": alpha.reshape(-1)}, channels=int(alpha.shape[1]))
        else:
            self.add_layer(op, "prelu_full", [x], {"alpha": alpha}, shape=list(alpha.shape))

    def op_RELU(self, op: Operator) -> None:
        self.add_layer(op, "activation", [op.inputs[0]], activation="relu")

    def op_RELU6(self, op: Operator) -> None:
        self.add_layer(op, "activation", [op.inputs[0]], activation="relu6")

    def op_LOGISTIC(self, op: Operator) -> None:
        self.add_layer(op, "activation", [op.inputs[0]], activation="sigmoid")

    def op_PAD(self, op: Operator) -> None:
        x = op.inputs[0]
        pads = self.constant(op, op.inputs[1], "paddings").astype(np.int64).reshape(-1, 2)
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            self.fail(op, "a constant value input (PADV2) is not supported", unsupported=True)
        rank = self.rank(x)
        if pads.shape[0] != rank:
            self.fail(op, f"{pads.shape[0]} padding pairs for a rank-{rank} input")
        if rank == 4:
            pads = pads[[0, 3, 1, 2]]  # NHWC rows -> NCHW rows
        torch_pad: List[int] = []
        for before, after in pads[::-1]:  # F.pad: last dimension first
            torch_pad += [int(before), int(after)]
        while torch_pad and torch_pad[-2:] == [0, 0]:
            torch_pad = torch_pad[:-2]
        if pads[0].any():
            self.fail(op, "padding the batch dimension is not supported", unsupported=True)
        self.add_layer(op, "pad", [x], pad=torch_pad)

    def op_RESHAPE(self, op: Operator) -> None:
        x, out = op.inputs[0], op.outputs[0]
        self.batch_preserved(op, x, out)
        shape = list(self.shape(out))
        if -1 in shape[1:] or any(d < 0 for d in shape):
            self.fail(op, f"output shape {shape} is not static", unsupported=True)
        self.add_layer(op, "reshape", [x], shape=[-1] + shape[1:],
                       from_nchw=self.rank(x) == 4, to_nchw=len(shape) == 4)

    def op_CONCATENATION(self, op: Operator) -> None:
        rank = self.rank(op.outputs[0])
        axis = op.options["axis"] % rank
        if axis == 0:
            self.fail(op, "concatenation along the batch dimension is not supported", unsupported=True)
        dim = _NHWC_TO_NCHW_AXIS[axis] if rank == 4 else axis
        ins = [self.activation_input(op, t) for t in op.inputs]
        self.add_layer(op, "concat", ins, dim=dim, activation=self.activation(op))

    def op_RESIZE_BILINEAR(self, op: Operator) -> None:
        x = op.inputs[0]
        size = [int(v) for v in self.constant(op, op.inputs[1], "size").reshape(-1)]
        ac, hp = op.options.get("align_corners", False), op.options.get("half_pixel_centers", False)
        if ac == hp:  # neither (TF1 legacy sampling) or both (invalid in TFLite)
            self.fail(op, f"align_corners={ac}, half_pixel_centers={hp} is not supported "
                          "(only one of them true)", unsupported=True)
        self.add_layer(op, "resize_bilinear", [x], size=size, align_corners=bool(ac))

    def op_FULLY_CONNECTED(self, op: Operator) -> None:
        x, w_id = op.inputs[0], op.inputs[1]
        b_id = op.inputs[2] if len(op.inputs) > 2 else -1
        if op.options.get("weights_format", 0) != 0:
            self.fail(op, "shuffled weights are not supported", unsupported=True)
        if op.options.get("keep_num_dims", False):
            self.fail(op, "keep_num_dims is not supported", unsupported=True)
        w = self.float_constant(op, w_id, "weights")  # [out, in]
        out_f, in_f = w.shape
        bias = self.float_constant(op, b_id, "bias") if b_id >= 0 else np.zeros(out_f, np.float32)
        rank = self.rank(x)
        if rank != 2:
            self.batch_preserved(op, x)
            if int(np.prod(self.shape(x)[1:])) != in_f:
                self.fail(op, f"input {list(self.shape(x))} does not flatten to {in_f} features")
        self.add_layer(op, "linear", [x], {"weight": w, "bias": bias.reshape(out_f)},
                       in_features=in_f, out_features=out_f, flatten=rank != 2, from_nchw=rank == 4,
                       activation=self.activation(op))

    def op_MEAN(self, op: Operator) -> None:
        x = op.inputs[0]
        rank = self.rank(x)
        axes = sorted({int(a) % rank for a in self.constant(op, op.inputs[1], "axes").reshape(-1)})
        if 0 in axes:
            self.fail(op, "a mean over the batch dimension is not supported", unsupported=True)
        keep = bool(op.options.get("keep_dims", False))
        dims = [_NHWC_TO_NCHW_AXIS[a] for a in axes] if rank == 4 else axes
        if rank == 4 and not keep and sorted(axes) != [1, 2]:
            self.fail(op, f"mean over NHWC axes {axes} without keep_dims is not supported", unsupported=True)
        self.add_layer(op, "mean", [x], dims=dims, keepdim=keep)

    # -- driver -------------------------------------------------------------------
    def run(self) -> NetworkSpec:
        for t in self.g.inputs:
            if self.rank(t) == 4:
                self.batch_preserved(Operator(-1, "INPUT", (), ()), t)
        for op in self.g.operators:
            handler = getattr(self, f"op_{op.opcode}", None)
            if handler is None or op.opcode not in SUPPORTED_OPERATORS:
                raise UnsupportedOperatorError(
                    f"operator {op.opcode} (#{op.index}) is not supported by the converter "
                    f"(supported: {', '.join(SUPPORTED_OPERATORS)})")
            handler(op)
        produced = {t for t in self.g.inputs} | {layer["output"] for layer in self.layers}
        for t in self.g.outputs:
            if t not in produced:
                raise ConversionError(f"graph output {self.g.tensors[t].name!r} is not computed by any layer")
        return NetworkSpec(
            layers=self.layers, inputs=list(self.g.inputs),
            input_shapes=[list(self.shape(t)) for t in self.g.inputs],
            outputs=list(self.g.outputs), output_names=[self.g.tensors[t].name for t in self.g.outputs],
            output_nhwc=[self.rank(t) == 4 for t in self.g.outputs], weights=self.weights)


def convert_graph(graph: Graph) -> NetworkSpec:
    """Translate ``graph`` (see module docstring).

    Raises:
        UnsupportedOperatorError: an operator or attribute outside ``SUPPORTED_OPERATORS``;
            the message names the operator and its index in the graph.
        ConversionError: an inconsistent graph (shapes, missing outputs).
    """
    return _Converter(graph).run()
