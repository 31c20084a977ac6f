"""ament_python package hand_mesh_ros (also pip-installable without ROS 2)."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "hand_mesh_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz") + glob("config/*.xml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="hand_mesh_ros developers",
    maintainer_email="hand-mesh-ros@example.org",
    description="Camera images in, 3D MANO hand meshes out, for ROS 2.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "hand_mesh_node = hand_mesh_ros.node:main",
            "hand-mesh = hand_mesh_ros.cli:main",
            "camera_publisher = hand_mesh_ros.ros.camera_publisher:main",
            "hand_mesh_demo = hand_mesh_ros.demo:main",
        ],
    },
)
