"""The converter on a small synthetic TFLite graph: every supported operator, the NHWC
semantics of the axis-dependent ones, asymmetric SAME padding, int8 / float16 constants,
checked against plain numpy implementations of the TFLite operators."""
import flatbuffers
import numpy as np
import pytest
import torch

import tflite
from tflite.BuiltinOperator import BuiltinOperator as OP
from tflite.BuiltinOptions import BuiltinOptions as OPT

from hand_mesh_ros.core.detectors.mediapipe_torch.convert import convert_graph
from hand_mesh_ros.core.detectors.mediapipe_torch.network import build_network
from hand_mesh_ros.core.detectors.mediapipe_torch.tflite_reader import read_tflite

_TYPES = {np.dtype(np.float32): 0, np.dtype(np.float16): 1, np.dtype(np.int32): 2, np.dtype(np.int8): 9}
SAME, VALID = 0, 1
RELU6 = 3


class TinyModel:
    """Writes a one-subgraph .tflite flatbuffer (the tflite schema package's builders)."""

    def __init__(self):
        self.tensors, self.ops, self.codes = [], [], []

    def tensor(self, shape, data=None, dtype=np.float32, scale=None, zero_point=None):
        data = None if data is None else np.asarray(data, dtype)
        self.tensors.append((list(shape), np.dtype(dtype), data, scale, zero_point))
        return len(self.tensors) - 1

    def op(self, code, inputs, outputs, options=None):
        if code not in self.codes:
            self.codes.append(code)
        self.ops.append((self.codes.index(code), inputs, outputs, options))

    def build(self, inputs, outputs) -> bytes:
        b = flatbuffers.Builder(4096)
        ivec = lambda v: b.CreateNumpyVector(np.asarray(v, np.int32))  # noqa: E731
        buffers = [None] + [t[2] for t in self.tensors if t[2] is not None]
        buf_offs = []
        for data in buffers:
            blob = b.CreateByteVector(data.tobytes()) if data is not None else None
            tflite.BufferStart(b)
            if blob is not None:
                tflite.BufferAddData(b, blob)
            buf_offs.append(tflite.BufferEnd(b))
        tensor_offs, next_buffer = [], 1
        for k, (shape, dtype, data, scale, zero) in enumerate(self.tensors):
            name, shp = b.CreateString(f"t{k}"), ivec(shape)
            quant = None
            if scale is not None:
                sc = b.CreateNumpyVector(np.asarray(scale, np.float32))
                zp = b.CreateNumpyVector(np.asarray(zero, np.int64))
                tflite.QuantizationParametersStart(b)
                tflite.QuantizationParametersAddScale(b, sc)
                tflite.QuantizationParametersAddZeroPoint(b, zp)
                quant = tflite.QuantizationParametersEnd(b)
            tflite.TensorStart(b)
            tflite.TensorAddShape(b, shp)
            tflite.TensorAddType(b, _TYPES[dtype])
            tflite.TensorAddName(b, name)
            if data is not None:
                tflite.TensorAddBuffer(b, next_buffer)
                next_buffer += 1
            if quant is not None:
                tflite.TensorAddQuantization(b, quant)
            tensor_offs.append(tflite.TensorEnd(b))
        op_offs = []
        for code_index, ins, outs, options in self.ops:
            opt = options[1](b) if options else None
            iv, ov = ivec(ins), ivec(outs)
            tflite.OperatorStart(b)
            tflite.OperatorAddOpcodeIndex(b, code_index)
            tflite.OperatorAddInputs(b, iv)
            tflite.OperatorAddOutputs(b, ov)
            if options:
                tflite.OperatorAddBuiltinOptionsType(b, options[0])
                tflite.OperatorAddBuiltinOptions(b, opt)
            op_offs.append(tflite.OperatorEnd(b))
        code_offs = []
        for code in self.codes:
            tflite.OperatorCodeStart(b)
            tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
            tflite.OperatorCodeAddBuiltinCode(b, code)
            tflite.OperatorCodeAddVersion(b, 1)
            code_offs.append(tflite.OperatorCodeEnd(b))

        def table_vec(start, offs):
            start(b, len(offs))
            for o in reversed(offs):
                b.PrependUOffsetTRelative(o)
            return b.EndVector()

        tv, ov = table_vec(tflite.SubGraphStartTensorsVector, tensor_offs), table_vec(
            tflite.SubGraphStartOperatorsVector, op_offs)
        gi, go = ivec(inputs), ivec(outputs)
        tflite.SubGraphStart(b)
        tflite.SubGraphAddTensors(b, tv)
        tflite.SubGraphAddInputs(b, gi)
        tflite.SubGraphAddOutputs(b, go)
        tflite.SubGraphAddOperators(b, ov)
        sg = tflite.SubGraphEnd(b)
        cv = table_vec(tflite.ModelStartOperatorCodesVector, code_offs)
        sv = table_vec(tflite.ModelStartSubgraphsVector, [sg])
        bv = table_vec(tflite.ModelStartBuffersVector, buf_offs)
        tflite.ModelStart(b)
        tflite.ModelAddVersion(b, 3)
        tflite.ModelAddOperatorCodes(b, cv)
        tflite.ModelAddSubgraphs(b, sv)
        tflite.ModelAddBuffers(b, bv)
        b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def _opts(kind, **fields):
    """(BuiltinOptions type, builder) for an options table with ``fields`` (schema names)."""
    def make(b):
        getattr(tflite, f"{kind}Start")(b)
        for name, value in fields.items():
            getattr(tflite, f"{kind}Add{name}")(b, value)
        return getattr(tflite, f"{kind}End")(b)
    return getattr(OPT, kind), make


# -- numpy references of the TFLite operators (NHWC) -------------------------------------
def np_pad_same(x, kh, kw, sh, sw, value=0.0):
    """TensorFlow's SAME: output ceil(size / stride), the odd pixel of padding after."""
    pads = []
    for size, k, s in ((x.shape[1], kh, sh), (x.shape[2], kw, sw)):
        total = max((-(-size // s) - 1) * s + k - size, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=value)


def np_windows(x, kh, kw, sh, sw):
    """(n, oh, ow, kh, kw, c) sliding windows of an NHWC array (VALID)."""
    n, h, w, c = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.empty((n, oh, ow, kh, kw, c), x.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, i, j] = x[:, i * sh:i * sh + kh, j * sw:j * sw + kw]
    return out


def np_depthwise(x, w, bias, stride, mult):
    p = np_pad_same(x, w.shape[1], w.shape[2], stride, stride)
    win = np_windows(p, w.shape[1], w.shape[2], stride, stride)
    win = np.repeat(win, mult, axis=-1)  # output channel c * mult + j reads input channel c
    return (win * w[0]).sum(axis=(3, 4)) + bias


def np_conv(x, w, bias):  # VALID, stride 1, w [O, kh, kw, I]
    win = np_windows(x, w.shape[1], w.shape[2], 1, 1)
    return np.einsum("nhwabi,oabi->nhwo", win, w) + bias


def np_resize_half_pixel(x, oh, ow):
    n, h, w, c = x.shape

    def coords(out, size):
        src = (np.arange(out) + 0.5) * size / out - 0.5
        lo = np.floor(src)
        frac = src - lo
        return np.clip(lo, 0, size - 1).astype(int), np.clip(lo + 1, 0, size - 1).astype(int), frac

    y0, y1, fy = coords(oh, h)
    x0, x1, fx = coords(ow, w)
    top = x[:, y0][:, :, x0] * (1 - fx)[None, None, :, None] + x[:, y0][:, :, x1] * fx[None, None, :, None]
    bot = x[:, y1][:, :, x0] * (1 - fx)[None, None, :, None] + x[:, y1][:, :, x1] * fx[None, None, :, None]
    return top * (1 - fy)[None, :, None, None] + bot * fy[None, :, None, None]


@pytest.fixture(scope="module")
def graph_and_reference():
    rng = np.random.default_rng(0)
    m = TinyModel()
    x = m.tensor([1, 5, 6, 3])
    pads = m.tensor([4, 2], [[0, 0], [1, 2], [0, 1], [0, 0]], np.int32)
    t1 = m.tensor([1, 8, 7, 3])
    m.op(OP.PAD, [x, pads], [t1])
    t2 = m.tensor([1, 4, 4, 3])
    m.op(OP.MAX_POOL_2D, [t1], [t2], _opts("Pool2DOptions", Padding=SAME, StrideW=2, StrideH=2, FilterWidth=3,
                                            FilterHeight=3))
    dw16 = rng.normal(size=(1, 3, 3, 6)).astype(np.float16)
    dw_w16, dw_w, dw_b = m.tensor([1, 3, 3, 6], dw16, np.float16), m.tensor([1, 3, 3, 6]), m.tensor([6], rng.normal(size=6))
    m.op(OP.DEQUANTIZE, [dw_w16], [dw_w])
    t3 = m.tensor([1, 4, 4, 6])
    m.op(OP.DEPTHWISE_CONV_2D, [t2, dw_w, dw_b], [t3], _opts(
        "DepthwiseConv2DOptions", Padding=SAME, StrideW=1, StrideH=1, DepthMultiplier=2, FusedActivationFunction=RELU6))
    q = rng.integers(-127, 128, size=(4, 1, 1, 6)).astype(np.int8)
    scale = rng.uniform(0.01, 0.05, size=4)
    cw8 = m.tensor([4, 1, 1, 6], q, np.int8, scale=scale, zero_point=[0, 0, 0, 0])
    cw, cb = m.tensor([4, 1, 1, 6]), m.tensor([4], rng.normal(size=4))
    m.op(OP.DEQUANTIZE, [cw8], [cw])
    t4 = m.tensor([1, 4, 4, 4])
    m.op(OP.CONV_2D, [t3, cw, cb], [t4], _opts("Conv2DOptions", Padding=VALID, StrideW=1, StrideH=1))
    c4 = m.tensor([4], rng.normal(size=4))
    t5 = m.tensor([1, 4, 4, 4])
    m.op(OP.ADD, [t4, c4], [t5], _opts("AddOptions"))
    alpha = m.tensor([4, 4, 4], rng.uniform(0.0, 0.5, size=(4, 4, 4)))
    t6 = m.tensor([1, 4, 4, 4])
    m.op(OP.PRELU, [t5, alpha], [t6])
    t7 = m.tensor([1, 4, 4, 10])
    m.op(OP.CONCATENATION, [t6, t3], [t7], _opts("ConcatenationOptions", Axis=3))
    t8, t9 = m.tensor([1, 4, 4, 10]), m.tensor([1, 4, 4, 10])
    m.op(OP.RELU, [t7], [t8])
    m.op(OP.LOGISTIC, [t8], [t9])
    axes, t10 = m.tensor([2], [1, 2], np.int32), m.tensor([1, 1, 1, 10])
    m.op(OP.MEAN, [t9, axes], [t10], _opts("ReducerOptions", KeepDims=True))
    shape, t11 = m.tensor([3], [1, 4, 40], np.int32), m.tensor([1, 4, 40])
    m.op(OP.RESHAPE, [t7, shape], [t11])
    fw, fb, t12 = m.tensor([5, 160], rng.normal(size=(5, 160))), m.tensor([5], rng.normal(size=5)), m.tensor([1, 5])
    m.op(OP.FULLY_CONNECTED, [t7, fw, fb], [t12], _opts("FullyConnectedOptions"))
    size, t13 = m.tensor([2], [8, 9], np.int32), m.tensor([1, 8, 9, 6])
    m.op(OP.RESIZE_BILINEAR, [t3, size], [t13], _opts("ResizeBilinearOptions", HalfPixelCenters=True))
    t14 = m.tensor([1, 4, 4, 4])
    m.op(OP.RELU6, [t5], [t14])
    raw = m.build([x], [t10, t11, t12, t13, t14])

    def reference(xv):
        a = np.pad(xv, ((0, 0), (1, 2), (0, 1), (0, 0)))
        a = np_windows(np_pad_same(a, 3, 3, 2, 2, -np.inf), 3, 3, 2, 2).max(axis=(3, 4))
        a3 = np.clip(np_depthwise(a, dw16.astype(np.float32), m.tensors[dw_b][2], 1, 2), 0, 6)
        a4 = np_conv(a3, q.astype(np.float32) * scale[:, None, None, None], m.tensors[cb][2])
        a5 = a4 + m.tensors[c4][2]
        al = m.tensors[alpha][2]
        a6 = np.where(a5 >= 0, a5, a5 * al)
        a7 = np.concatenate([a6, a3], axis=3)
        a9 = 1 / (1 + np.exp(-np.maximum(a7, 0)))
        return [a9.mean(axis=(1, 2), keepdims=True), a7.reshape(len(xv), 4, 40),
                a7.reshape(len(xv), -1) @ m.tensors[fw][2].T + m.tensors[fb][2],
                np_resize_half_pixel(a3, 8, 9), np.clip(a5, 0, 6)]

    return raw, reference


def test_every_supported_operator_matches_numpy(graph_and_reference):
    raw, reference = graph_and_reference
    spec = convert_graph(read_tflite(raw))
    kinds = {L["kind"] for L in spec.layers}
    assert {"pad", "maxpool2d", "conv2d", "add", "prelu_full", "concat", "activation", "mean", "reshape",
            "linear", "resize_bilinear", "const"} <= kinds
    net = build_network(spec)
    x = np.random.default_rng(1).normal(size=(2, 5, 6, 3)).astype(np.float32)  # batch 2
    with torch.inference_mode():
        got = [o.numpy() for o in net(torch.from_numpy(x).permute(0, 3, 1, 2))]
    want = reference(x.astype(np.float64))
    assert [g.shape for g in got] == [w.shape for w in want]
    for k, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5, err_msg=f"output {k}")
    # channels-last execution (what the detector uses) computes the same
    cl = build_network(spec).to(memory_format=torch.channels_last)
    with torch.inference_mode():
        got_cl = [o.numpy() for o in cl(torch.from_numpy(x).permute(0, 3, 1, 2))]
    for g, c in zip(got, got_cl):
        np.testing.assert_allclose(c, g, rtol=1e-6, atol=1e-6)
