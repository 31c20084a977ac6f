"""Launch hand_mesh_node on one camera, optionally with RViz.

    ros2 launch hand_mesh_ros hands.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info rviz:=true

    # a RealSense with aligned depth, compressed transport, restarted after a crash
    ros2 launch hand_mesh_ros hands.launch.py image:=/camera/camera/color/image_raw \
        camera_info:=/camera/camera/color/camera_info use_depth:=true \
        depth:=/camera/camera/aligned_depth_to_color/image_raw image_transport:=compressed \
        respawn:=true respawn_delay:=2.0

Parameters come from config/hands.yaml (or ``params_file:=...``). Every node parameter
(``hand_mesh_ros.config.PARAMETERS``) is also a launch argument of the same name; an argument
left empty (the default) keeps the params file's value, a given one overrides it. (Launch
defaults that repeat the YAML defaults would silently override a user's params file.) Strings
are passed as strings; numbers, booleans and lists are read as YAML, like ``ros2 run ... -p
name:=value`` (``image_topics:="['/cam0/image_raw', '/cam1/image_raw']"``), and checked by the
parameter table before the node starts: ``max_hands:=two`` stops the launch with one line
naming the argument and what is allowed. ``image`` / ``camera_info``
/ ``depth`` are remappings of the node's input topics (one camera; for several set
``image_topics``); with ``image_transport:=compressed`` the node reads ``<image>/compressed``
(and ``<depth>/compressedDepth``) of the remapped names. ``respawn:=true`` restarts the node
``respawn_delay`` seconds after it exits (a crash, or a start-up error that may be
transient such as a GPU not yet ready).
"""
import os

from hand_mesh_ros.config import PARAMETERS, launch_overrides


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

    # given arguments only, parsed and checked by the parameter table (one line naming a bad one)
    overrides = launch_overrides({p.name: LaunchConfiguration(p.name).perform(context) for p in PARAMETERS})
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
    args += [DeclareLaunchArgument(p.name, default_value="",
                                   description=f"{p.doc} ({p.allowed()}); empty = params file value")
             for p in PARAMETERS]
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        arguments=["-d", os.path.join(share, "config", "hands.rviz")],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return LaunchDescription(args + [OpaqueFunction(function=_node_actions, args=[share]), rviz])
