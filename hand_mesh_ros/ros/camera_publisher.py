"""``camera_publisher``: publish a video file, an image file or a folder of images as a camera.

Topics (relative, remappable with ``--ros-args -r image:=... -r camera_info:=...``):
    ``image`` (sensor_msgs/Image, ``rgb8`` or ``bgr8``; with ``--transport compressed``
    sensor_msgs/CompressedImage on ``<image>/compressed``, JPEG ``--jpeg-quality``, as
    compressed_image_transport publishes it) and ``camera_info``
    (sensor_msgs/CameraInfo, same header: stamp = publish time, frame_id ``--frame-id``,
    default ``camera_color_optical_frame``). QoS: reliable, keep-last 5 (matches both
    best-effort sensor-data subscribers and reliable ones such as RViz).

Intrinsics: ``K`` from ``--fx --fy --cx --cy`` [px]; any not given comes from the default
pinhole camera with a 60 deg horizontal field of view, square pixels and the principal point
at the image centre (``core.types.CameraIntrinsics.assumed_for``). No distortion
(``plumb_bob``, D = 0), ``P = [K | 0]``.

Timing: ``--rate`` Hz, default the video's fps (10 Hz for images). Before the first frame it
waits until ``--wait-subscribers`` subscriptions (default 1) match ``image`` (and
``camera_info``), for at most ``--wait-timeout`` s. Exits after the last frame (or after
``--max-frames`` frames), unless ``--loop``.

DDS: the shipped Fast DDS profile for large messages is applied unless you set your own
(``ros.dds_profile``).

Stopping: Ctrl-C (SIGINT) or SIGTERM ends it cleanly, exit code 0, with the count of frames
published. rclpy's own signal handler is not installed: it would shut the context down under
a running ``publish`` ("publisher's context is invalid", a traceback and exit code 1);
instead the signal interrupts the loop, and the node is destroyed before rclpy shuts down.

Example: ``camera_publisher video.mp4 --rate 15 --loop``.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from hand_mesh_ros.frames import FrameSource, InputError

def _parse(argv) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="camera_publisher", description=__doc__.split("\n")[0])
    ap.add_argument("input", help="video file, image file or folder of images (sorted by name)")
    ap.add_argument("--rate", type=float, default=None, help="frames per second (default: video fps, 10 for images)")
    ap.add_argument("--loop", action="store_true", help="start again after the last frame")
    ap.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0 = no limit)")
    ap.add_argument("--no-camera-info", action="store_true", help="publish images only")
    ap.add_argument("--encoding", choices=("rgb8", "bgr8"), default="rgb8")
    ap.add_argument("--transport", choices=("raw", "compressed"), default="raw",
                    help="raw: Image on image; compressed: JPEG CompressedImage on image/compressed")
    ap.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality (--transport compressed)")
    ap.add_argument("--frame-id", default="camera_color_optical_frame")
    for k in ("fx", "fy", "cx", "cy"):
        ap.add_argument(f"--{k}", type=float, default=None, help=f"intrinsics {k} [px] (default: 60 deg HFOV camera)")
    ap.add_argument("--wait-subscribers", type=int, default=1,
                    help="wait for this many subscriptions on image (and camera_info) before starting")
    ap.add_argument("--wait-timeout", type=float, default=60.0, help="longest wait for subscribers [s]")
    return ap.parse_args(argv)


def camera_info_msg(width: int, height: int, header, fx=None, fy=None, cx=None, cy=None):
    """``sensor_msgs/CameraInfo`` for an undistorted pinhole camera (defaults: 60 deg HFOV)."""
    from sensor_msgs.msg import CameraInfo

    from hand_mesh_ros.core.types import CameraIntrinsics

    d = CameraIntrinsics.assumed_for(width, height)
    fx = d.fx if fx is None else fx
    fy = d.fy if fy is None else fy
    cx = d.cx if cx is None else cx
    cy = d.cy if cy is None else cy
    info = CameraInfo()
    info.header = header
    info.width, info.height = int(width), int(height)
    info.distortion_model = "plumb_bob"
    info.d = [0.0] * 5
    info.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def _interrupt(signum, frame):
    """SIGTERM handler: stop as Ctrl-C does."""
    raise KeyboardInterrupt


def main(argv=None) -> int:
    """Console script ``camera_publisher``; ``--ros-args ...`` after the options go to rclpy."""
    import rclpy
    from rclpy.duration import Duration
    from rclpy.node import Node
    from rclpy.qos import QoSProfile
    from rclpy.signals import SignalHandlerOptions
    from rclpy.utilities import remove_ros_args
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image
    from std_msgs.msg import Header

    from hand_mesh_ros.ros.image_conversion import rgb_to_compressed, rgb_to_image

    argv = sys.argv if argv is None else argv
    args = _parse(remove_ros_args(args=argv)[1:])
    path = Path(args.input)
    try:
        source = FrameSource(path, args.max_frames or None)
    except InputError as e:
        print(f"camera_publisher: {e}", file=sys.stderr)
        return 2
    rate = args.rate or source.fps or 10.0
    if rate <= 0:
        print(f"camera_publisher: --rate must be > 0, got {rate}", file=sys.stderr)
        return 2

    from hand_mesh_ros.ros import dds_profile

    dds = dds_profile.apply()  # the sender's segment carries the images
    # Ctrl-C / SIGTERM interrupt the loop (KeyboardInterrupt) instead of shutting rclpy down
    # under a running publish (module docstring, "Stopping")
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also where the parent ignored it
    signal.signal(signal.SIGTERM, _interrupt)
    rclpy.init(args=argv, signal_handler_options=SignalHandlerOptions.NO)
    node = Node("camera_publisher")
    log = node.get_logger()
    log.info(dds)
    qos = QoSProfile(depth=5)
    if args.transport == "compressed":
        topic = node.resolve_topic_name("image") + "/compressed"  # image_transport's name, after remapping
        image_pub = node.create_publisher(CompressedImage, topic, qos)

        def encode(rgb, header):
            return rgb_to_compressed(rgb, header, "jpeg", args.jpeg_quality)
    else:
        image_pub = node.create_publisher(Image, "image", qos)

        def encode(rgb, header):
            return rgb_to_image(rgb, header, args.encoding)
    info_pub = None if args.no_camera_info else node.create_publisher(CameraInfo, "camera_info", qos)
    pubs = [image_pub] + ([info_pub] if info_pub else [])
    n = 0
    try:
        deadline = time.monotonic() + args.wait_timeout
        while any(p.get_subscription_count() < args.wait_subscribers for p in pubs):
            if time.monotonic() > deadline:
                log.warning(f"no {args.wait_subscribers} subscriber(s) after {args.wait_timeout} s; publishing anyway")
                break
            time.sleep(0.02)
        period = 1.0 / rate
        next_t = time.monotonic()
        while rclpy.ok():
            n_pass = n
            for frame in source:
                rgb = frame.image
                header = Header(frame_id=args.frame_id, stamp=node.get_clock().now().to_msg())
                image_pub.publish(encode(rgb, header))
                if info_pub is not None:
                    info_pub.publish(camera_info_msg(rgb.shape[1], rgb.shape[0], header,
                                                     args.fx, args.fy, args.cx, args.cy))
                n += 1
                if args.max_frames and n >= args.max_frames:
                    break
                next_t += period
                time.sleep(max(0.0, next_t - time.monotonic()))
                next_t = max(next_t, time.monotonic() - period)
            if n == n_pass:
                raise ValueError(f"camera_publisher: no frame could be read from {path}")
            if not args.loop or (args.max_frames and n >= args.max_frames):
                break
        for p in pubs:  # the last reliable samples delivered before the writer disappears
            p.wait_for_all_acked(Duration(seconds=5.0))
        log.info(f"published {n} frame(s) from {path}")
    except (InputError, ValueError) as e:
        log.error(f"camera_publisher: {e}")
        return 2
    except KeyboardInterrupt:
        log.info(f"interrupted: published {n} frame(s) from {path}")
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
