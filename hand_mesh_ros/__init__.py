"""hand_mesh_ros: camera images in, 3D MANO hand meshes out (ROS 2).

``hand_mesh_ros.core`` is ROS-free (numpy / torch); ``hand_mesh_ros.node`` is the ROS adapter.
"""
__version__ = "0.1.0"
