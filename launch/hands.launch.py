"""Launch hand_mesh_node on one camera, optionally with RViz.

    ros2 launch hand_mesh_ros hands.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info rviz:=true

    # a RealSense with aligned depth, compressed transport, restarted after a crash
    ros2 launch hand_mesh_ros hands.launch.py image:=/camera/camera/color/image_raw \
        camera_info:=/camera/camera/color/camera_info use_depth:=true \
        depth:=/camera/camera/aligned_depth_to_color/image_raw image_transport:=compressed \
        respawn:=true respawn_delay:=2.0

Parameters come from config/hands.yaml (or ``params_file:=...``). Every node parameter is
also a launch argument of the same name; an argument left empty (the default) keeps the
params file's value, a given one overrides it. (Launch defaults that repeat the YAML
defaults would silently override a user's params file.) Strings are passed as strings;
numbers, booleans and lists are read as YAML, like ``ros2 run ... -p name:=value``
(``image_topics:="['/cam0/image_raw', '/cam1/image_raw']"``). ``image`` / ``camera_info``
/ ``depth`` are remappings of the node's input topics (one camera; for several set
``image_topics``); with ``image_transport:=compressed`` the node reads ``<image>/compressed``
(and ``<depth>/compressedDepth``) of the remapped names. ``respawn:=true`` restarts the node
``respawn_delay`` seconds after it exits (a crash, or a start-up error that may be
transient such as a GPU not yet ready).
"""
import os

#: node parameters whose launch argument is passed as a string, as typed.
STRING_PARAMETERS = ("detector", "detector_model", "regressor", "device", "mano_model_dir", "checkpoint",
                     "precision", "tf_prefix", "smoothing", "input_reliability", "image_transport")
#: node parameters whose launch argument is read as YAML (int, double, bool, string list).
YAML_PARAMETERS = ("batch_size", "max_hands", "min_score", "publish_faces", "publish_markers",
                   "publish_overlay", "image_topics", "mirrored", "use_camera_info", "image_rectified", "sync_slop",
                   "smoothing_min_cutoff", "smoothing_beta", "track_max_missed", "side_hysteresis",
                   "nms_iou", "nms_keypoint_distance", "camera_info_timeout", "require_camera_info",
                   "use_depth", "depth_wait", "depth_topics")
#: YAML parameters of type double: an integer argument ("1") is given as 1.0.
DOUBLE_PARAMETERS = ("min_score", "sync_slop", "smoothing_min_cutoff", "smoothing_beta", "nms_iou",
                     "nms_keypoint_distance", "camera_info_timeout", "depth_wait")
#: YAML parameters of type integer / string list (the other YAML parameters are booleans).
INTEGER_PARAMETERS = ("batch_size", "max_hands", "track_max_missed", "side_hysteresis")
LIST_PARAMETERS = ("image_topics", "depth_topics")
DESCRIPTIONS = {
    "detector": "hand detector: auto | mediapipe | mediapipe_torch", "detector_model": "full | lite",
    "regressor": "MANO regressor: fit | hamer",
    "device": "auto | cpu | cuda", "batch_size": "hand crops per regressor batch (>= 1)",
    "max_hands": "hands kept per image (>= 1)", "min_score": "detection score threshold [0, 1]",
    "mano_model_dir": "folder with MANO_RIGHT.pkl / MANO_LEFT.pkl",
    "checkpoint": "regressor checkpoint (hamer)", "image_topics": "YAML list of image topics",
    "smoothing": "none | one_euro", "smoothing_min_cutoff": "One Euro cutoff at rest [Hz] (> 0)",
    "smoothing_beta": "One Euro speed coefficient (>= 0)",
    "track_max_missed": "frames a track keeps its id unseen (>= 0)",
    "side_hysteresis": "frames of the other side label to change a track's side (>= 1)",
    "nms_iou": "box IoU making two detections one hand (0, 1]",
    "nms_keypoint_distance": "keypoint distance making two detections one hand [box diagonals]",
    "image_transport": "raw | compressed", "depth_topics": "YAML list of depth topics (with image_topics)",
    "camera_info_timeout": "seconds of images without CameraInfo before assuming intrinsics",
    "image_rectified": "true = rectified images (image_rect): CameraInfo P, no distortion",
    "depth_wait": "longest a colour frame waits for its depth [s] (0 = never)",
}


def parameter_overrides(values):
    """Node parameter overrides from launch argument values.

    Args:
        values: {parameter name: launch argument string}; "" means "not given".
    Returns:
        {name: value} for the given arguments only: strings for ``STRING_PARAMETERS``,
        YAML-parsed values for ``YAML_PARAMETERS`` (integers as floats for
        ``DOUBLE_PARAMETERS``). Their type is checked here (``max_hands:=two`` stops the
        launch with one line naming the argument); allowed values are checked by the node
        at start-up.
    Raises:
        ValueError: a YAML argument that does not parse or is of the wrong type (the
            message names it and the type expected).
    """
    import yaml

    out = {}
    for name, text in values.items():
        if text == "":
            continue
        if name in STRING_PARAMETERS:
            out[name] = text
            continue
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"launch argument '{name}': {text!r} is not valid YAML ({e})") from None
        if name in DOUBLE_PARAMETERS and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        expected = ("a number" if name in DOUBLE_PARAMETERS else "an integer" if name in INTEGER_PARAMETERS
                    else "a YAML list of strings" if name in LIST_PARAMETERS else "true or false")
        ok = (isinstance(value, float) if name in DOUBLE_PARAMETERS
              else isinstance(value, int) and not isinstance(value, bool) if name in INTEGER_PARAMETERS
              else isinstance(value, list) and all(isinstance(v, str) for v in value) if name in LIST_PARAMETERS
              else isinstance(value, bool))
        if not ok:
            raise ValueError(f"launch argument '{name}': {text!r} is not {expected}")
        out[name] = value
    return out


def respawn_options(respawn, respawn_delay):
    """(respawn, respawn_delay) for ``launch_ros.actions.Node`` from the launch arguments.

    Args:
        respawn: "true" / "false" (YAML booleans).
        respawn_delay: seconds [s] >= 0 before a restart.
    Raises:
        ValueError: naming the argument and what is allowed.
    """
    import yaml

    flag = yaml.safe_load(respawn) if respawn else False
    if not isinstance(flag, bool):
        raise ValueError(f"launch argument 'respawn': {respawn!r} is not allowed; allowed: true, false")
    try:
        delay = float(respawn_delay)
    except ValueError:
        delay = -1.0
    if not delay >= 0.0:
        raise ValueError(f"launch argument 'respawn_delay': {respawn_delay!r} is not allowed; allowed: seconds >= 0")
    return flag, delay


def _node_actions(context, share):
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    names = STRING_PARAMETERS + YAML_PARAMETERS
    overrides = parameter_overrides({n: LaunchConfiguration(n).perform(context) for n in names})
    respawn, respawn_delay = respawn_options(LaunchConfiguration("respawn").perform(context),
                                             LaunchConfiguration("respawn_delay").perform(context))
    return [Node(
        package="hand_mesh_ros",
        executable="hand_mesh_node",
        name="hand_mesh_node",
        output="screen",
        parameters=[LaunchConfiguration("params_file").perform(context), overrides],
        remappings=[("image", LaunchConfiguration("image").perform(context)),
                    ("camera_info", LaunchConfiguration("camera_info").perform(context)),
                    ("depth", LaunchConfiguration("depth").perform(context))],
        respawn=respawn,
        respawn_delay=respawn_delay,
    )]


def generate_launch_description():
    from ament_index_python.packages import get_package_share_directory
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.conditions import IfCondition
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    share = get_package_share_directory("hand_mesh_ros")
    args = [
        DeclareLaunchArgument("image", default_value="image", description="input image topic (remapping)"),
        DeclareLaunchArgument("camera_info", default_value="camera_info",
                              description="input CameraInfo topic (remapping)"),
        DeclareLaunchArgument("depth", default_value="depth",
                              description="input depth topic (remapping; with use_depth:=true)"),
        DeclareLaunchArgument("respawn", default_value="false", description="restart the node when it exits"),
        DeclareLaunchArgument("respawn_delay", default_value="2.0", description="seconds before a restart"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "hands.yaml"),
                              description="node parameters (YAML)"),
        DeclareLaunchArgument("rviz", default_value="false", description="open RViz with config/hands.rviz"),
    ]
    args += [DeclareLaunchArgument(n, default_value="",
                                   description=DESCRIPTIONS.get(n, n) + "; empty = params file value")
             for n in STRING_PARAMETERS + YAML_PARAMETERS]
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        arguments=["-d", os.path.join(share, "config", "hands.rviz")],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return LaunchDescription(args + [OpaqueFunction(function=_node_actions, args=[share]), rviz])
