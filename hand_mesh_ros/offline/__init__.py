"""The parts of ``hand-mesh run`` (``hand_mesh_ros.cli``) between its flags and the pipeline.

A run reads one ``frames.FrameStream`` (``frames.FrameSource``: video, image folder, image;
``bag.BagFrameSource``: rosbag2), gives each frame what it is processed with
(:mod:`.inputs`: intrinsics, depth), runs ``core.pipeline.HandMeshPipeline`` and hands each
result to every output sink (:mod:`.sinks`: frame JSON, meshes, overlays, an output bag;
the JSON schema in :mod:`.records`). All of it is ROS-free but the output bag.
"""
