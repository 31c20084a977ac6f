"""Read a TensorFlow Lite flatbuffer (``.tflite``) into plain Python data.

The schema classes come from the ``tflite`` package (flatc-generated from TensorFlow's
``schema.fbs``); this module only walks them and copies out what a converter needs: the
tensors of the first subgraph (name, shape, element type, constant data), the operators in
execution order (builtin name, input / output tensor indices, options) and the graph's
input / output tensors. Nothing here depends on torch.

Reference: TensorFlow Lite flatbuffer schema, ``tensorflow/compiler/mlir/lite/schema/schema.fbs``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np


class TFLiteFormatError(ValueError):
    """The file is not a TensorFlow Lite model this reader understands."""


#: TensorType enum -> numpy dtype (only the types the reader copies out).
_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_,
           7: np.int16, 9: np.int8, 10: np.float64}

#: Builtin options copied per operator: op name -> (options class name, {key: accessor}).
_OPTIONS = {
    "CONV_2D": ("Conv2DOptions", {"padding": "Padding", "stride_h": "StrideH", "stride_w": "StrideW",
                                  "dilation_h": "DilationHFactor", "dilation_w": "DilationWFactor",
                                  "activation": "FusedActivationFunction"}),
    "DEPTHWISE_CONV_2D": ("DepthwiseConv2DOptions", {
        "padding": "Padding", "stride_h": "StrideH", "stride_w": "StrideW",
        "dilation_h": "DilationHFactor", "dilation_w": "DilationWFactor",
        "depth_multiplier": "DepthMultiplier", "activation": "FusedActivationFunction"}),
    "MAX_POOL_2D": ("Pool2DOptions", {"padding": "Padding", "stride_h": "StrideH", "stride_w": "StrideW",
                                      "filter_h": "FilterHeight", "filter_w": "FilterWidth",
                                      "activation": "FusedActivationFunction"}),
    "ADD": ("AddOptions", {"activation": "FusedActivationFunction"}),
    "CONCATENATION": ("ConcatenationOptions", {"axis": "Axis", "activation": "FusedActivationFunction"}),
    "RESIZE_BILINEAR": ("ResizeBilinearOptions", {"align_corners": "AlignCorners",
                                                  "half_pixel_centers": "HalfPixelCenters"}),
    "FULLY_CONNECTED": ("FullyConnectedOptions", {"activation": "FusedActivationFunction",
                                                  "weights_format": "WeightsFormat",
                                                  "keep_num_dims": "KeepNumDims"}),
    "MEAN": ("ReducerOptions", {"keep_dims": "KeepDims"}),
    "RESHAPE": ("ReshapeOptions", {"new_shape": "NewShapeAsNumpy"}),
}


@dataclass(frozen=True)
class Tensor:
    """One tensor of the graph.

    Attributes:
        index: position in the subgraph's tensor list.
        name: the converter-given name (e.g. ``"Identity"`` for an output).
        shape: static shape (TFLite layout, NHWC for images; batch first).
        dtype: numpy dtype of the elements.
        data: the constant's values (``shape``-shaped array) or None for an activation.
        scale, zero_point: affine quantization parameters (empty when not quantized).
    """

    index: int
    name: str
    shape: Tuple[int, ...]
    dtype: np.dtype
    data: Optional[np.ndarray] = None
    scale: Tuple[float, ...] = ()
    zero_point: Tuple[int, ...] = ()


@dataclass(frozen=True)
class Operator:
    """One operator, in execution order.

    Attributes:
        index: position in the subgraph's operator list.
        opcode: builtin operator name, e.g. ``"CONV_2D"``; a custom op is ``"CUSTOM:<code>"``.
        inputs, outputs: tensor indices (-1 = an omitted optional input).
        options: the builtin options listed in ``_OPTIONS`` (ints / bools / lists).
    """

    index: int
    opcode: str
    inputs: Tuple[int, ...]
    outputs: Tuple[int, ...]
    options: Dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Graph:
    """The first subgraph of a model: tensors, operators, graph inputs and outputs."""

    tensors: Tuple[Tensor, ...]
    operators: Tuple[Operator, ...]
    inputs: Tuple[int, ...]
    outputs: Tuple[int, ...]


def _builtin_names() -> Dict[int, str]:
    from tflite.BuiltinOperator import BuiltinOperator

    return {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}


def _buffer_data(model, raw: bytes, buffer_index: int) -> Optional[bytes]:
    if buffer_index <= 0 or buffer_index >= model.BuffersLength():
        return None
    buf = model.Buffers(buffer_index)
    offset = buf.Offset() if hasattr(buf, "Offset") else 0
    if offset > 1:  # large models keep buffers after the flatbuffer (offset / size)
        return raw[offset:offset + buf.Size()]
    if buf.DataLength() == 0:
        return None
    return buf.DataAsNumpy().tobytes()


def _read_options(op, opcode: str) -> Dict[str, Any]:
    spec = _OPTIONS.get(opcode)
    if spec is None or op.BuiltinOptions() is None:
        return {}
    import tflite

    table = op.BuiltinOptions()
    opts = getattr(tflite, spec[0])()
    opts.Init(table.Bytes, table.Pos)
    out = {}
    for key, accessor in spec[1].items():
        value = getattr(opts, accessor)()
        if isinstance(value, np.ndarray):
            value = [int(v) for v in value]
        elif isinstance(value, (bool, np.bool_)):
            value = bool(value)
        elif isinstance(value, (int, np.integer)):
            value = int(value)
        out[key] = value
    return out


def read_tflite(raw: bytes) -> Graph:
    """Parse the bytes of a ``.tflite`` file.

    Args:
        raw: the whole file.

    Returns:
        ``Graph`` of subgraph 0 (the models this package converts have one subgraph).

    Raises:
        TFLiteFormatError: not a TFLite flatbuffer (identifier ``TFL3``), no subgraph, a
            constant of an element type the reader does not copy, or a malformed buffer.
    """
    if len(raw) < 8 or raw[4:8] != b"TFL3":
        raise TFLiteFormatError("not a TensorFlow Lite model (flatbuffer identifier 'TFL3' missing)")
    import tflite

    try:
        model = tflite.Model.GetRootAsModel(raw, 0)
        if model.SubgraphsLength() < 1:
            raise TFLiteFormatError("the model has no subgraph")
        names = _builtin_names()
        sg = model.Subgraphs(0)
        tensors: List[Tensor] = []
        for i in range(sg.TensorsLength()):
            t = sg.Tensors(i)
            shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            ttype = t.Type()
            data = _buffer_data(model, raw, t.Buffer())
            if ttype not in _DTYPES:
                if data is not None:
                    raise TFLiteFormatError(f"tensor {t.Name().decode()!r}: constant of TensorType {ttype} "
                                            "is not supported")
                dtype = np.dtype(np.float32)
            else:
                dtype = np.dtype(_DTYPES[ttype])
            array = None
            if data is not None:
                array = np.frombuffer(data, dtype=dtype).copy()
                if array.size != int(np.prod(shape, dtype=np.int64)):
                    raise TFLiteFormatError(f"tensor {t.Name().decode()!r}: {array.size} values for shape {shape}")
                array = array.reshape(shape)
            q = t.Quantization()
            scale = tuple(float(v) for v in q.ScaleAsNumpy()) if q is not None and q.ScaleLength() else ()
            zero = tuple(int(v) for v in q.ZeroPointAsNumpy()) if q is not None and q.ZeroPointLength() else ()
            tensors.append(Tensor(i, t.Name().decode(), shape, dtype, array, scale, zero))
        operators: List[Operator] = []
        for i in range(sg.OperatorsLength()):
            op = sg.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
            opcode = names.get(builtin, f"BUILTIN_{builtin}")
            if opcode == "CUSTOM":
                opcode = f"CUSTOM:{(code.CustomCode() or b'').decode()}"
            operators.append(Operator(i, opcode, tuple(int(j) for j in op.InputsAsNumpy()),
                                      tuple(int(j) for j in op.OutputsAsNumpy()), _read_options(op, opcode)))
        return Graph(tuple(tensors), tuple(operators), tuple(int(j) for j in sg.InputsAsNumpy()),
                     tuple(int(j) for j in sg.OutputsAsNumpy()))
    except TFLiteFormatError:
        raise
    except Exception as exc:  # a truncated or corrupt flatbuffer raises anything from struct to IndexError
        raise TFLiteFormatError(f"malformed TensorFlow Lite flatbuffer ({type(exc).__name__}: {exc})") from exc
