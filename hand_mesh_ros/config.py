"""Every parameter of hand_mesh_ros, in one table (ROS-free).

``PARAMETERS`` is the one place a parameter is defined: name, type, default, allowed values or
range, unit, a one-line description, and where it applies (``scope``). Everything that names a
parameter reads it from here:

* the node (``ros/parameters.py``): declarations, descriptors (``ros2 param describe``), the
  values it runs with (``NodeParams``);
* the pipeline: :class:`PipelineConfig` is made from the ``"pipeline"`` entries;
* the offline CLI (``hand-mesh run``): a ``--flag`` per pipeline entry and per entry marked
  ``cli`` (:func:`add_cli_arguments`);
* the launch file (``launch/hands.launch.py``): a launch argument per entry, parsed and checked
  by :func:`launch_value`;
* ``config/hands.yaml`` and the README's parameter table: written by :func:`render_yaml` /
  :func:`render_readme_table` (``make params``); a test fails when either differs.

Adding a parameter: one :class:`Param` entry below (then ``make params``), plus the code that
uses it. Values are checked once, by :func:`check_value` (each value) and
:func:`check_together` (rules between parameters); every message names the parameter and what
is allowed.

This module is a leaf: it imports nothing of the project (and no numpy / torch / rclpy), so the
launch file and ``hand-mesh --help`` load it fast, and the core reads its lists of allowed
values (``DETECTORS``, ``PRECISIONS``, ...) from here.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import numbers
import textwrap
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

#: ``detector``: "auto" = mediapipe_torch on CUDA, else MediaPipe's CPU graph.
DETECTORS = ("auto", "mediapipe", "mediapipe_torch")
#: ``detector_model``: MediaPipe's model_complexity 1 / 0 (palm and landmark networks).
DETECTOR_MODELS = ("full", "lite")
REGRESSORS = ("fit", "hamer")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
SMOOTHING = ("none", "one_euro")
#: ``detection_tiling`` words (besides a tile side in pixels) and ``tile_scan`` values
#: (``core.detectors.mediapipe_torch.tiling``).
TILING_WORDS = ("auto", "off")
TILE_SCANS = ("round_robin", "all")
#: ``image_transport``: as image_transport names its plugins.
TRANSPORTS = ("raw", "compressed")
INPUT_RELIABILITY = ("best_effort", "reliable")

#: Parameter types (``Param.kind``) and their ROS 2 parameter type names.
KINDS = {"str": "string", "int": "integer", "float": "double", "bool": "bool", "str_list": "string array",
         "str_or_int": "string or integer"}
SCOPES = ("pipeline", "node")
#: The node's name: the key of its parameters in a params file.
NODE_NAME = "hand_mesh_node"


@dataclass(frozen=True)
class Param:
    """One parameter.

    Attributes:
        name: as the node, the params file and the launch file call it (the CLI flag is
            ``--`` + the name with dashes).
        kind: one of ``KINDS``: "str", "int", "float", "bool", "str_list", or "str_or_int"
            (one of ``choices``, or an integer within ``low`` / ``high``; an integer written
            as a string, e.g. a launch argument "448", is read as the integer; ``false`` is
            read as "off" where that is a choice: ``-p name:=off`` and an unquoted ``off``
            in a params file arrive as the boolean false, YAML 1.1's reading).
        default: the default value (of ``kind``'s Python type).
        doc: one line: what it does (no default, no range: those are rendered from the fields).
        scope: "pipeline" (a :class:`PipelineConfig` field, also a CLI flag) or "node" (the ROS
            node only).
        choices: the allowed values of a "str" parameter (empty = any string).
        low, high: bounds of an "int" / "float" parameter (None = unbounded);
        low_open, high_open: the bound itself is excluded.
        unit: SI unit of a number, e.g. "s", "Hz" ("" = none).
        cli: also a flag of ``hand-mesh run`` (pipeline parameters always are).
        cli_aliases: further flag names kept for compatibility.
    """

    name: str
    kind: str
    default: Any
    doc: str
    scope: str = "node"
    choices: Tuple[str, ...] = ()
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False
    unit: str = ""
    cli: bool = False
    cli_aliases: Tuple[str, ...] = ()

    def __post_init__(self):
        if self.kind not in KINDS or self.scope not in SCOPES:
            raise ValueError(f"Param {self.name}: kind {self.kind!r} / scope {self.scope!r}")

    @property
    def python_type(self) -> type:
        return {"str": str, "int": int, "float": float, "bool": bool, "str_list": list,
                "str_or_int": Union[str, int]}[self.kind]

    @property
    def in_cli(self) -> bool:
        return self.scope == "pipeline" or self.cli

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def allowed(self) -> str:
        """What is allowed, as one phrase: ``one of auto, cpu, cuda``, ``an integer >= 1``,
        ``a double in [0, 1]``, ``a bool``."""
        if self.kind == "str_or_int":
            return "one of " + ", ".join(self.choices) + f", or an integer {self.range_text()}".rstrip()
        if self.choices:
            return "one of " + ", ".join(self.choices)
        noun = {"str": "a string", "int": "an integer", "float": "a double", "bool": "a bool",
                "str_list": "a list of strings"}[self.kind]
        rng = self.range_text()
        return f"{noun} {rng}" if rng else noun

    def range_text(self) -> str:
        """``in [0, 1]``, ``in (0, 1]``, ``> 0``, ``>= 1`` or "" (no bound)."""
        lo, hi = self.low, self.high
        if lo is not None and hi is not None:
            return f"in {'(' if self.low_open else '['}{_num(lo)}, {_num(hi)}{')' if self.high_open else ']'}"
        if lo is not None:
            return f"{'>' if self.low_open else '>='} {_num(lo)}"
        if hi is not None:
            return f"{'<' if self.high_open else '<='} {_num(hi)}"
        return ""


def _num(v: float) -> str:
    return f"{v:g}"


# Order = config/hands.yaml and the README table.
PARAMETERS: Tuple[Param, ...] = (
    # -- models --------------------------------------------------------------------------------
    Param("detector", "str", "auto", "hand detector: mediapipe (MediaPipe's CPU graph, one per camera), "
          "mediapipe_torch (the same networks run by torch on device, batched across cameras and hands), "
          "auto (mediapipe_torch on CUDA; on the CPU mediapipe, and mediapipe_torch for the frames that get tiles, "
          "see detection_tiling)", "pipeline", DETECTORS),
    Param("detector_model", "str", "full", "MediaPipe palm and landmark networks (model_complexity 1 / 0), "
          "both detectors", "pipeline", DETECTOR_MODELS),
    Param("regressor", "str", "fit", "MANO regressor: fit (fit the hand model to the detector's 3D "
          "keypoints, no weights needed) or hamer (your HaMeR checkpoint)", "pipeline", REGRESSORS),
    Param("device", "str", "auto", "device of the torch stages (auto: CUDA when available)", "pipeline", DEVICES),
    Param("batch_size", "int", 8, "crops per network forward, all cameras together (HaMeR crops; "
          "mediapipe_torch palm frames and hand crops)", "pipeline", low=1),
    Param("max_hands", "int", 2, "hands kept per image (after de-duplication)", "pipeline", low=1),
    Param("min_score", "float", 0.5, "detection score threshold", "pipeline", low=0.0, high=1.0),
    Param("mano_model_dir", "str", "", "folder with MANO_RIGHT.pkl / MANO_LEFT.pkl; empty = the built-in hand",
          "pipeline"),
    Param("checkpoint", "str", "", "HaMeR checkpoint (hamer.ckpt or a plain state dict) for regressor hamer, "
          "model_config.yaml next to it or two folders up; empty = none", "pipeline"),
    Param("precision", "str", "auto", "compute precision of hamer and mediapipe_torch: auto (bf16, else fp16, "
          "autocast on CUDA; fp32 on the CPU), fp32, bf16, fp16 (CUDA only)", "pipeline", PRECISIONS),
    Param("detection_tiling", "str_or_int", "auto", "tiled palm search for small hands in large frames "
          "(mediapipe_torch): auto = a pyramid of tiles from 192 px (then 384, 768, ... px while at most 2/3 "
          "of the long side) when the frame is larger than 640x480, off = whole frame only (MediaPipe's search "
          "exactly), N = the same pyramid from tiles of N px when the long side is larger; with detector "
          "auto on the CPU the frames that get tiles go to mediapipe_torch, the others to MediaPipe's graph",
          "pipeline", TILING_WORDS, low=96, unit="px"),
    Param("tile_scan", "str", "round_robin", "tiles searched per palm search of a stream: round_robin = the "
          "whole frame plus half a tile on average (a new small hand is searched within 134 frames at 1280x720, "
          "296 at 1920x1080), all = every tile every time; images in static mode always search all",
          "pipeline", TILE_SCANS),
    # -- outputs -------------------------------------------------------------------------------
    Param("publish_faces", "bool", False, "fill HandMesh.faces (F x 3 vertex indices) in every message"),
    Param("publish_markers", "bool", True, "publish hands/markers (MarkerArray for RViz; built only while "
          "subscribed)"),
    Param("publish_overlay", "bool", False, "publish hands/overlay (the mesh drawn over the input image; "
          "drawn only while subscribed)"),
    Param("tf_prefix", "str", "hand_", "TF frame prefix: <tf_prefix><side>/<joint>, e.g. hand_right/index_tip",
          cli=True),
    # -- tracking and smoothing ----------------------------------------------------------------
    Param("smoothing", "str", "none", "temporal smoothing of tracked hands (one_euro: rotation-safe One Euro "
          "filter per track)", "pipeline", SMOOTHING),
    Param("smoothing_min_cutoff", "float", 2.0, "One Euro cutoff at rest: lower = less jitter, more lag",
          "pipeline", low=0.0, low_open=True, unit="Hz"),
    Param("smoothing_beta", "float", 0.5, "One Euro speed coefficient [Hz per rad/s; per 0.1 m/s of "
          "translation]: higher = less lag when moving", "pipeline", low=0.0),
    Param("track_max_missed", "int", 5, "frames a track keeps its id while its hand is not detected",
          "pipeline", low=0),
    Param("side_hysteresis", "int", 10, "consecutive frames of the other side label needed to change a "
          "track's side", "pipeline", low=1),
    Param("nms_iou", "float", 0.5, "two detections whose boxes overlap by this IoU or more are one hand",
          "pipeline", low=0.0, high=1.0, low_open=True),
    Param("nms_keypoint_distance", "float", 0.2, "two detections whose mean keypoint distance is at most this "
          "many box diagonals are one hand", "pipeline", low=0.0),
    # -- inputs --------------------------------------------------------------------------------
    Param("image_topics", "str_list", [], "several cameras: one image topic each, camera info on <namespace "
          "of the topic>/camera_info; empty = one camera on image + camera_info (remappable)"),
    Param("mirrored", "bool", False, "the images are mirrored (selfie view): swap left / right", "pipeline"),
    Param("use_camera_info", "bool", True, "use CameraInfo intrinsics; false = images only, assumed "
          "intrinsics (60 deg horizontal FOV, TRANSLATION_ASSUMED)"),
    Param("image_rectified", "bool", False, "the images are rectified (image_rect from image_proc): intrinsics "
          "from CameraInfo P, no lens distortion; false = raw images, K and D", cli=True,
          cli_aliases=("--rectified",)),
    Param("input_reliability", "str", "best_effort", "QoS reliability of the inputs (depth 1, keep last): "
          "best_effort (sensor-data QoS, matches every publisher) or reliable (reliable publishers only; no "
          "lost fragments of large images)", choices=INPUT_RELIABILITY),
    Param("sync_slop", "float", 0.05, "largest image / camera_info (and image / depth) stamp difference paired",
          low=0.0, low_open=True, unit="s"),
    Param("image_transport", "str", "raw", "image input: raw (sensor_msgs/Image on <image>) or compressed "
          "(CompressedImage on <image>/compressed, depth on <depth>/compressedDepth)", choices=TRANSPORTS),
    Param("camera_info_timeout", "float", 2.0, "images without a paired CameraInfo this long: one warning, then "
          "assumed intrinsics (or skipped with require_camera_info)", low=0.0, low_open=True, unit="s"),
    Param("require_camera_info", "bool", False, "skip (and count) frames without CameraInfo instead of "
          "assuming intrinsics"),
    Param("use_depth", "bool", False, "subscribe a depth image registered to each colour image (16UC1 mm, "
          "32FC1 m) on depth (remap it, e.g. to .../aligned_depth_to_color/image_raw)"),
    Param("depth_wait", "float", 0.05, "longest a colour frame waits for its depth image (aligned depth comes "
          "a few ms after colour), then it is processed without; 0 = never wait", low=0.0, high=1.0, unit="s"),
    Param("depth_topics", "str_list", [], "with image_topics and use_depth: one depth topic per camera, same "
          "order; empty = the RealSense layout <ns>/color/image_raw -> <ns>/aligned_depth_to_color/image_raw"),
)

BY_NAME: Dict[str, Param] = {p.name: p for p in PARAMETERS}
if len(BY_NAME) != len(PARAMETERS):
    raise ValueError("duplicate parameter names in PARAMETERS")


# -- checking ------------------------------------------------------------------------------------
def check_value(param: Param, value: Any, what: str = "parameter") -> Any:
    """``value`` if ``param`` allows it (ints are accepted for doubles and returned as float).

    Raises:
        ValueError: ``"<what> '<name>': <value> is not allowed; allowed: <allowed>"``.
    """
    def bad():
        return ValueError(f"{what} '{param.name}': {value!r} is not allowed; allowed: {param.allowed()}")

    k = param.kind
    if k == "str_or_int":
        if isinstance(value, str) and value in param.choices:
            return value
        if value is False and "off" in param.choices:  # YAML 1.1 reads an unquoted off as false
            return "off"
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise bad()
        k = "int"
    if k == "bool":
        if not isinstance(value, bool):
            raise bad()
        return value
    if k == "str":
        if not isinstance(value, str) or (param.choices and value not in param.choices):
            raise bad()
        return value
    if k == "str_list":
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise bad()
        return list(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
            (k == "int" and not isinstance(value, numbers.Integral)):
        raise bad()
    v = float(value)
    ok = math.isfinite(v)
    if ok and param.low is not None:
        ok = v > param.low if param.low_open else v >= param.low
    if ok and param.high is not None:
        ok = v < param.high if param.high_open else v <= param.high
    if not ok:
        raise bad()
    return int(value) if k == "int" else v


for _p in PARAMETERS:  # every default is allowed
    check_value(_p, _p.default)


def check_together(values: Mapping[str, Any]) -> None:
    """The rules between parameters, on a mapping with (some of) the parameters' values.

    Raises:
        ValueError: naming the parameter to change.
    """
    get = values.get
    if get("regressor") == "hamer" and not get("checkpoint"):
        raise ValueError("parameter 'checkpoint': regressor 'hamer' needs a HaMeR checkpoint file "
                         "(e.g. _DATA/hamer_ckpts/checkpoints/hamer.ckpt)")
    if get("precision") == "fp16" and get("device") == "cpu":
        raise ValueError("parameter 'precision': fp16 needs device 'cuda' (or 'auto' with a GPU)")
    if get("detector") == "mediapipe" and isinstance(get("detection_tiling"), int):
        raise ValueError(f"parameter 'detection_tiling': {get('detection_tiling')!r} needs detector "
                         "'mediapipe_torch' or 'auto' (MediaPipe's CPU graph searches whole frames only); "
                         "with detector 'mediapipe' allowed: auto (no effect) or off")
    images, depths = get("image_topics") or [], get("depth_topics") or []
    if get("use_depth") and images and depths and len(depths) != len(images):
        raise ValueError(f"parameter 'depth_topics': {len(depths)} topics for {len(images)} image_topics; "
                         "allowed: one per image topic, or [] for the RealSense layout")
    topics = [t for t in images if t]
    if len(set(topics)) != len(topics):
        raise ValueError(f"parameter 'image_topics': {topics!r} is not allowed; allowed: distinct topic names")


def check_values(values: Mapping[str, Any], what: str = "parameter") -> Dict[str, Any]:
    """Each value checked (:func:`check_value`), then :func:`check_together`; returns the
    checked values. Unknown names raise ``ValueError`` too."""
    out = {}
    for name, value in values.items():
        if name not in BY_NAME:
            raise ValueError(f"unknown {what} '{name}'; known: {', '.join(BY_NAME)}")
        out[name] = check_value(BY_NAME[name], value, what)
    check_together(out)
    return out


# -- the typed records ---------------------------------------------------------------------------
def _record_class(name: str, params: Iterable[Param], extra: Iterable[tuple], doc: str, namespace: dict):
    fields = [(p.name, p.python_type, dataclasses.field(default_factory=lambda d=p.default: _copy(d)))
              for p in params] + list(extra)
    cls = dataclasses.make_dataclass(name, fields, namespace=namespace)
    cls.__module__ = __name__
    cls.__doc__ = doc
    return cls


def _copy(v):
    return list(v) if isinstance(v, list) else v


def _attribute_docs(params: Iterable[Param]) -> str:
    lines = []
    for p in params:
        rng = f" ({p.allowed()})" if p.choices or p.range_text() else ""
        unit = f" [{p.unit}]" if p.unit else ""
        lines.append(textwrap.fill(f"{p.name}: {p.doc}{unit}{rng}; default {p.default!r}.", 96,
                                   initial_indent="    ", subsequent_indent="        "))
    return "\n".join(lines)


def _validate_pipeline(self) -> None:
    """Raise ``ValueError`` naming the parameter and the allowed values (each value, the
    rules between them, and ``device: cuda`` against ``torch.cuda.is_available()``)."""
    values = {p.name: getattr(self, p.name) for p in PIPELINE_PARAMETERS}
    check_values(values)
    if self.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ValueError("parameter 'device': 'cuda' requested but torch.cuda.is_available() is False; "
                             "use 'auto' or 'cpu'")


def _pipeline_from(cls, values: Mapping[str, Any], **extra):
    """A PipelineConfig from a mapping holding (at least) the pipeline's parameters, e.g. a
    ``NodeParams`` as a dict; other keys are ignored."""
    return cls(**{p.name: values[p.name] for p in PIPELINE_PARAMETERS if p.name in values}, **extra)


PIPELINE_PARAMETERS: Tuple[Param, ...] = tuple(p for p in PARAMETERS if p.scope == "pipeline")

PipelineConfig = _record_class(
    "PipelineConfig", PIPELINE_PARAMETERS, [("static_image_mode", bool, dataclasses.field(default=False))],
    "Pipeline settings: the ``\"pipeline\"`` parameters of ``config.PARAMETERS`` (the node's "
    "parameters of the same names), plus ``static_image_mode``.\n\nAttributes:\n"
    + _attribute_docs(PIPELINE_PARAMETERS)
    + "\n    static_image_mode: True for unrelated images (no tracking between images); the node "
      "always streams, the CLI sets it for images and folders.\n",
    {"validate": _validate_pipeline, "from_values": classmethod(_pipeline_from),
     "field_names": classmethod(lambda cls: tuple(f.name for f in dataclasses.fields(cls)))})

NodeParams = _record_class(
    "NodeParams", PARAMETERS, [],
    "The node's parameters as it runs with them (checked), one attribute per entry of "
    "``config.PARAMETERS``.\n\nAttributes:\n" + _attribute_docs(PARAMETERS) + "\n",
    {"as_dict": lambda self: dataclasses.asdict(self)})


# -- launch arguments and CLI flags --------------------------------------------------------------
def parse_text(param: Param, text: str, what: str = "launch argument") -> Any:
    """The value of ``param`` written as text (a launch argument, ``name:=value``): strings as
    typed; numbers, booleans and lists read as YAML, as ``ros2 run ... -p name:=value`` reads
    them (an integer given for a double becomes a float). Checked by :func:`check_value`.

    Raises:
        ValueError: ``"<what> '<name>': <text> is not allowed; allowed: ..."``.
    """
    if param.kind in ("str", "str_or_int"):
        return check_value(param, text, what)
    import yaml  # PyYAML: a dependency of every ROS 2 Python install (launch, rclpy's tools)

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ValueError(f"{what} '{param.name}': {text!r} is not allowed; allowed: {param.allowed()} "
                         "(not valid YAML)") from None
    if param.kind == "str_list" and value is None:
        value = []
    try:
        return check_value(param, value, what)
    except ValueError:
        raise ValueError(f"{what} '{param.name}': {text!r} is not allowed; allowed: {param.allowed()}") from None


def launch_overrides(arguments: Mapping[str, str]) -> Dict[str, Any]:
    """Node parameter overrides from launch argument values ({name: text}; "" = not given,
    keep the params file's value). Each given value is parsed by :func:`parse_text`.

    Raises:
        ValueError: one line naming the launch argument and what is allowed.
    """
    return {name: parse_text(BY_NAME[name], text) for name, text in arguments.items() if text != ""}


def _cli_type(param: Param):
    """argparse ``type`` of a flag: the text read as the parameter's type (a wrong type is an
    argparse error, exit 2); whether the value is allowed is :class:`PipelineConfig`'s check."""
    def convert(text: str):
        if param.kind in ("str", "str_or_int"):
            return text
        try:
            return float(text) if param.kind == "float" else int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {param.allowed()}") from None
    convert.__name__ = KINDS[param.kind]
    return convert


def add_cli_arguments(group) -> None:
    """A flag per parameter the CLI takes (``Param.in_cli``) on an argparse parser / group:
    ``--max-hands 3``, ``--mirrored`` / ``--no-mirrored``, defaults from the table, ``dest`` the
    parameter's name. A value of the wrong type is an argparse error; whether a value is allowed
    is checked with the others by :class:`PipelineConfig` ``validate`` (one line naming the
    parameter)."""
    for p in PARAMETERS:
        if not p.in_cli:
            continue
        if p.kind == "str_list":
            raise ValueError(f"parameter '{p.name}': a string list cannot be a hand-mesh flag")
        names = [p.flag, *p.cli_aliases]
        helptext = f"{p.doc}" + (f" [{p.unit}]" if p.unit else "") + f" (default: {_yaml_scalar(p.default)})"
        helptext = helptext.replace("%", "%%")
        if p.kind == "bool":
            group.add_argument(*names, dest=p.name, action=argparse.BooleanOptionalAction, default=p.default,
                               help=helptext)
        else:
            metavar = "|".join(p.choices + (("PX",) if p.kind == "str_or_int" else ())) if p.choices else \
                KINDS[p.kind].upper().replace(" ", "_")
            group.add_argument(*names, dest=p.name, type=_cli_type(p), default=_copy(p.default),
                               metavar=metavar, help=helptext)


def cli_values(args: argparse.Namespace) -> Dict[str, Any]:
    """{name: value} of every CLI parameter from parsed arguments."""
    return {p.name: getattr(args, p.name) for p in PARAMETERS if p.in_cli}


# -- generated files -----------------------------------------------------------------------------
def _yaml_scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, list):
        return "[" + ", ".join(_yaml_scalar(x) for x in v) + "]"
    return repr(v)


YAML_HEADER = """\
# Parameters of hand_mesh_node, with their defaults. Generated from hand_mesh_ros/config.py by
# `make params`: edit the table there, not this file (a test compares them).
# Every parameter is read at start-up (read-only); an invalid value stops the node with a message
# naming the parameter and the allowed values. Copy this file to keep your own values.
"""


def render_yaml() -> str:
    """config/hands.yaml: every parameter at its default, with its description as a comment."""
    lines = [YAML_HEADER.rstrip("\n"), f"{NODE_NAME}:", "  ros__parameters:"]
    for p in PARAMETERS:
        key = f"    {p.name}: {_yaml_scalar(p.default)}"
        number = " ".join(filter(None, [p.range_text(), f"[{p.unit}]" if p.unit else ""]))
        allowed = " | ".join(p.choices + ((f"an integer {number}",) if p.kind == "str_or_int" else ())) \
            if p.choices else number
        comment = f"{allowed}: {p.doc}" if allowed else p.doc
        width = max(len(key) + 1, 34)
        wrapped = textwrap.wrap(comment, 110 - width - 2) or [""]
        lines.append(f"{key:<{width}}# {wrapped[0]}")
        lines += [f"{'':<{width}}#   {w}" for w in wrapped[1:]]
    return "\n".join(lines) + "\n"


README_BEGIN = "<!-- parameters: generated from hand_mesh_ros/config.py by `make params`; edit there -->"
README_END = "<!-- end of parameters -->"


def render_readme_table() -> str:
    """The README's parameter table (between ``README_BEGIN`` and ``README_END``)."""
    rows = ["| parameter | default | allowed | |", "|---|---|---|---|"]
    for p in PARAMETERS:
        default = "`[]`" if p.kind == "str_list" else f"`{_yaml_scalar(p.default).strip(chr(34))}`"
        if p.kind == "str" and p.default == "":
            default = '`""`'
        allowed = ", ".join(f"`{c}`" for c in p.choices) if p.choices else p.range_text() or "—"
        if p.kind == "str_or_int":
            allowed += f", or an integer {p.range_text()}"
        unit = f" [{p.unit}]" if p.unit else ""
        rows.append(f"| `{p.name}` | {default} | {allowed}{unit} | {p.doc} |")
    return "\n".join([README_BEGIN, *rows, README_END])


def replace_readme_table(readme: str) -> str:
    """``readme`` with the text between the markers replaced by :func:`render_readme_table`.

    Raises:
        ValueError: the markers are missing.
    """
    a, b = readme.find(README_BEGIN), readme.find(README_END)
    if a < 0 or b < a:
        raise ValueError("README.md has no parameter table markers")
    return readme[:a] + render_readme_table() + readme[b + len(README_END):]


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m hand_mesh_ros.config ROOT``: write ROOT/config/hands.yaml and the README's
    parameter table (``make params``)."""
    import pathlib
    import sys

    root = pathlib.Path((argv if argv is not None else sys.argv[1:] or ["."])[0])
    (root / "config" / "hands.yaml").write_text(render_yaml())
    readme = root / "README.md"
    readme.write_text(replace_readme_table(readme.read_text()))
    print(f"wrote {root / 'config' / 'hands.yaml'} and the parameter table of {readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
