"""Launch hand_mesh_node on one camera, optionally with RViz.

    ros2 launch hand_mesh_ros hands.launch.py image:=/camera/color/image_raw \
        camera_info:=/camera/color/camera_info rviz:=true

Parameters come from config/hands.yaml (or ``params_file:=...``); the launch arguments
below override the matching node parameters. ``image`` / ``camera_info`` are remappings of
the node's input topics. For several cameras set ``image_topics`` in the YAML file.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description():
    share = get_package_share_directory("hand_mesh_ros")
    args = [
        DeclareLaunchArgument("image", default_value="image", description="input image topic (remapping)"),
        DeclareLaunchArgument("camera_info", default_value="camera_info",
                              description="input CameraInfo topic (remapping)"),
        DeclareLaunchArgument("detector", default_value="mediapipe", description="hand detector"),
        DeclareLaunchArgument("regressor", default_value="fit", description="MANO regressor: fit | hamer"),
        DeclareLaunchArgument("device", default_value="auto", description="auto | cpu | cuda"),
        DeclareLaunchArgument("batch_size", default_value="8", description="hand crops per batch (>= 1)"),
        DeclareLaunchArgument("mano_model_dir", default_value="",
                              description="folder with MANO_RIGHT.pkl / MANO_LEFT.pkl; empty = built-in hand"),
        DeclareLaunchArgument("checkpoint", default_value="", description="regressor checkpoint (hamer)"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "hands.yaml"),
                              description="node parameters (YAML)"),
        DeclareLaunchArgument("rviz", default_value="false", description="open RViz with config/hands.rviz"),
    ]
    node = Node(
        package="hand_mesh_ros",
        executable="hand_mesh_node",
        name="hand_mesh_node",
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "detector": ParameterValue(LaunchConfiguration("detector"), value_type=str),
                "regressor": ParameterValue(LaunchConfiguration("regressor"), value_type=str),
                "device": ParameterValue(LaunchConfiguration("device"), value_type=str),
                "batch_size": ParameterValue(LaunchConfiguration("batch_size"), value_type=int),
                "mano_model_dir": ParameterValue(LaunchConfiguration("mano_model_dir"), value_type=str),
                "checkpoint": ParameterValue(LaunchConfiguration("checkpoint"), value_type=str),
            },
        ],
        remappings=[
            ("image", LaunchConfiguration("image")),
            ("camera_info", LaunchConfiguration("camera_info")),
        ],
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        arguments=["-d", os.path.join(share, "config", "hands.rviz")],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    return LaunchDescription(args + [node, rviz])
