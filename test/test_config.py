"""The one parameter table (``hand_mesh_ros.config``) and everything made from it.

A parameter missing anywhere, or a default that differs, fails here: the params file and the
README table are compared with what the table renders (``make params`` writes them), the
node's declarations, the launch arguments, the CLI flags and ``PipelineConfig`` are built from
the table and checked against it.
"""
import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from hand_mesh_ros import config
from hand_mesh_ros.config import BY_NAME, PARAMETERS, NodeParams, PipelineConfig

REPO = Path(__file__).resolve().parents[1]


def test_params_file_is_the_rendered_table():
    text = (REPO / "config" / "hands.yaml").read_text()
    assert text == config.render_yaml(), "config/hands.yaml differs from hand_mesh_ros/config.py: run `make params`"
    values = yaml.safe_load(text)[config.NODE_NAME]["ros__parameters"]
    assert list(values) == [p.name for p in PARAMETERS]
    for p in PARAMETERS:
        assert values[p.name] == p.default and type(values[p.name]) is type(p.default), p.name


def test_readme_table_is_the_rendered_table():
    readme = (REPO / "README.md").read_text()
    assert config.render_readme_table() in readme, "README parameter table differs: run `make params`"
    for p in PARAMETERS:
        assert f"| `{p.name}` |" in readme


def test_records_have_one_field_per_parameter_with_its_default():
    pipe = {f.name: f for f in dataclasses.fields(PipelineConfig)}
    assert list(pipe) == [p.name for p in PARAMETERS if p.scope == "pipeline"] + ["static_image_mode"]
    c, n = PipelineConfig(), NodeParams()
    for p in PARAMETERS:
        assert getattr(n, p.name) == p.default, p.name
        if p.scope == "pipeline":
            assert getattr(c, p.name) == p.default, p.name
    c.validate()
    # list defaults are not shared between records
    n.image_topics.append("/x")
    assert NodeParams().image_topics == []


@pytest.mark.parametrize("name, value, allowed", [
    ("detector", "yolo", "one of auto, mediapipe, mediapipe_torch"),
    ("max_hands", 0, "an integer >= 1"), ("max_hands", 1.5, "an integer >= 1"), ("max_hands", True, "an integer >= 1"),
    ("min_score", 1.5, r"a double in \[0, 1\]"), ("nms_iou", 0.0, r"a double in \(0, 1\]"),
    ("smoothing_min_cutoff", 0.0, "a double > 0"), ("smoothing_min_cutoff", float("nan"), "a double > 0"),
    ("publish_markers", "yes", "a bool"), ("image_topics", "/cam", "a list of strings"),
])
def test_a_bad_value_names_the_parameter_and_what_is_allowed(name, value, allowed):
    with pytest.raises(ValueError, match=rf"^parameter '{name}': .* is not allowed; allowed: {allowed}$"):
        config.check_value(BY_NAME[name], value)


def test_allowed_phrases_read_well():
    for p in PARAMETERS:
        text = p.allowed()
        assert not text.startswith("a integer") and "  " not in text, text


def test_rules_between_parameters():
    with pytest.raises(ValueError, match="parameter 'checkpoint'"):
        config.check_values({"regressor": "hamer", "checkpoint": ""})
    with pytest.raises(ValueError, match="parameter 'precision'"):
        config.check_values({"precision": "fp16", "device": "cpu"})
    with pytest.raises(ValueError, match="parameter 'image_topics'.*distinct"):
        config.check_values({"image_topics": ["/a", "/a"]})
    with pytest.raises(ValueError, match="parameter 'depth_topics': 1 topics for 2 image_topics"):
        config.check_values({"image_topics": ["/a", "/b"], "depth_topics": ["/d"], "use_depth": True})
    config.check_values({"image_topics": ["/a", "/b"], "depth_topics": ["/d"], "use_depth": False})  # not used
    config.check_values({"image_topics": [], "depth_topics": ["/d"], "use_depth": True})  # one camera on 'image'
    with pytest.raises(ValueError, match="parameter 'detection_tiling': 600 needs detector"):
        config.check_values({"detector": "mediapipe", "detection_tiling": 600})
    with pytest.raises(ValueError, match="unknown parameter 'maxhands'"):
        config.check_values({"maxhands": 2})


def test_pipeline_and_node_accept_the_same_values():
    """One range per parameter: a value the pipeline (CLI) accepts the node accepts, and the
    other way round (they disagreed: the node refused max_hands 100, the CLI took it)."""
    PipelineConfig(max_hands=100, smoothing_min_cutoff=5000.0, nms_keypoint_distance=20.0).validate()
    config.check_values({"max_hands": 100, "smoothing_min_cutoff": 5000.0, "nms_keypoint_distance": 20.0})
    for bad in ({"max_hands": 0}, {"smoothing_min_cutoff": 0.0}):
        with pytest.raises(ValueError):
            PipelineConfig(**bad).validate()
        with pytest.raises(ValueError):
            config.check_values(bad)


def _text(p):
    """A parameter's default written as a launch argument."""
    if p.kind in ("str", "str_or_int"):
        return str(p.default)
    return config._yaml_scalar(p.default)


def test_launch_arguments_parse_every_default_back():
    over = config.launch_overrides({p.name: _text(p) for p in PARAMETERS if _text(p) != ""})
    for name, value in over.items():
        assert value == BY_NAME[name].default and type(value) is type(BY_NAME[name].default), name
    assert config.launch_overrides({"min_score": "1"}) == {"min_score": 1.0}
    assert isinstance(config.launch_overrides({"min_score": "1"})["min_score"], float)
    assert config.launch_overrides({"image_topics": "['/a', '/b']"}) == {"image_topics": ["/a", "/b"]}
    for name, text in (("max_hands", "two"), ("batch_size", "[1, 2"), ("use_depth", "maybe"), ("detector", "yolo")):
        with pytest.raises(ValueError, match=rf"^launch argument '{name}': '.*' is not allowed; allowed: "):
            config.launch_overrides({name: text})


def test_node_declares_every_parameter_from_the_table():
    rclpy = pytest.importorskip("rclpy")
    from hand_mesh_ros.ros.parameters import declare_parameters

    ctx = rclpy.context.Context()
    rclpy.init(args=["t"], context=ctx)
    node = rclpy.create_node("hand_mesh_node", context=ctx)
    try:
        params = declare_parameters(node)
        assert params == NodeParams()
        for p in PARAMETERS:
            d = node.describe_parameter(p.name)
            assert d.read_only and d.additional_constraints == p.allowed() and d.description.startswith(p.doc)
            if p.kind == "int" and p.low is not None:
                assert d.integer_range[0].from_value == p.low
            if p.kind == "float" and p.high is not None:
                assert d.floating_point_range[0].to_value == p.high
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)


def test_cli_has_a_flag_per_pipeline_parameter_with_the_same_default():
    from hand_mesh_ros import cli

    parser = cli.build_parser()
    args = parser.parse_args(["run", "--input", "x"])
    for p in PARAMETERS:
        if p.in_cli:
            assert getattr(args, p.name) == p.default, p.name
    assert cli.pipeline_config(args, static_image_mode=False) == PipelineConfig()
    given = parser.parse_args(["run", "--input", "x", "--max-hands", "3", "--nms-iou", "0.4", "--no-mirrored",
                               "--rectified", "--tf-prefix", "h_", "--detector", "mediapipe_torch"])
    c = cli.pipeline_config(given, static_image_mode=True)
    assert (c.max_hands, c.nms_iou, c.mirrored, c.detector, c.static_image_mode) == (3, 0.4, False,
                                                                                      "mediapipe_torch", True)
    assert given.image_rectified is True and given.tf_prefix == "h_"
    with pytest.raises(ValueError, match=r"^parameter 'max_hands': 0 is not allowed"):
        PipelineConfig(max_hands=0).validate()
    with pytest.raises(SystemExit) as e:  # a wrong type: argparse's usage error
        parser.parse_args(["run", "--input", "x", "--max-hands", "two"])
    assert e.value.code == 2


def test_cli_refuses_a_bad_value_with_one_line_naming_the_parameter(tmp_path, capsys):
    from hand_mesh_ros import cli

    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    assert cli.main(["run", "--input", str(tmp_path / "a.png"), "--output", str(tmp_path / "o"),
                     "--max-hands", "0"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "hand-mesh: error: parameter 'max_hands': 0 is not allowed; allowed: an integer >= 1"


def test_an_unquoted_off_is_off():
    """``-p detection_tiling:=off`` and ``detection_tiling: off`` in a params file arrive as
    the boolean false (YAML 1.1): that is "off", never "not allowed"; true is refused."""
    p = BY_NAME["detection_tiling"]
    assert config.check_value(p, False) == "off" and config.check_value(p, "off") == "off"
    with pytest.raises(ValueError, match="parameter 'detection_tiling'"):
        config.check_value(p, True)
