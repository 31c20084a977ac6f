"""rosbag2 in and out for the offline CLI (``hand-mesh run --input BAG --output-bag OUT.mcap``).

Reading (:class:`BagFrameSource`) needs only the ``rosbags`` library (pure Python; MCAP and
SQLite storage; a rosbag2 folder with ``metadata.yaml`` or a bare ``.mcap`` / ``.db3``
file; messages decoded with the definitions stored in the bag): no ROS install. Colour
frames come from one ``sensor_msgs/Image`` or ``CompressedImage`` topic, decoded by
``ros.image_conversion`` (the node's own decoder), each paired with the ``CameraInfo`` of
the same stamp (else the nearest one) from the topic beside it.

Writing (:class:`BagWriter`) builds the messages exactly as the node publishes them
(``ros.messages``, rclpy message classes), serializes them with rclpy (CDR, as rosbag2
records them) and writes an MCAP rosbag2 with ``rosbags``: each topic carries its full
message definition (this package's ``hand_mesh_msgs/msg/*.msg`` registered in rosbags'
typestore) and RIHS01 type hash, so ``ros2 bag play`` / ``ros2 bag info`` and Foxglove open it.
Writing therefore needs the ROS 2 Python messages (a ROS 2 install, or this project's venv).
"""
from __future__ import annotations

import bisect
import collections
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from hand_mesh_ros.frames import Frame, InputError
from hand_mesh_ros.ros.image_conversion import ImageDecodeError, to_rgb

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
BAG_SUFFIXES = (".mcap", ".db3")


def is_bag(path) -> bool:
    """A rosbag2 folder (with ``metadata.yaml``) or a ``.mcap`` / ``.db3`` storage file."""
    p = Path(path)
    return (p.is_dir() and (p / "metadata.yaml").is_file()) or (p.is_file() and p.suffix in BAG_SUFFIXES)


def _stamp_ns(msg) -> int:
    s = msg.header.stamp
    return int(s.sec) * 1_000_000_000 + int(s.nanosec)


def _listing(topics: Dict[str, str], types=None) -> str:
    rows = [f"{t} ({m})" for t, m in sorted(topics.items()) if types is None or m in types]
    return ", ".join(rows) or "none"


@dataclass
class BagFrame(Frame):
    """A decoded colour frame of a bag: ``Frame`` fields with ``time_s`` from the first
    frame, ``stamp_ns`` / ``frame_id`` of the image's header and ``camera_info`` the paired
    ``sensor_msgs/CameraInfo`` (or None).

    Attributes:
        log_time_ns: when the bag recorded it [ns].
        raw / info_raw: the image / CameraInfo message as recorded (CDR), for ``--bag-images``.
    """

    log_time_ns: int = 0
    raw: Optional[bytes] = None
    info_raw: Optional[bytes] = None


class BagFrameSource:
    """Colour frames of one image topic of a rosbag2, in recording order (a ``frames.FrameStream``).

    Args:
        path: rosbag2 folder, ``.mcap`` or ``.db3`` file.
        image_topic: default: the bag's only Image / CompressedImage topic.
        camera_info_topic: default: ``camera_info`` beside the image topic
            (``/cam/color/image_raw[/compressed]`` -> ``/cam/color/camera_info``) if the
            bag has it, else none (assumed intrinsics).
        max_frames: yield at most this many frames (None: all).
        on_skip: called ``(reason, message)`` for each message that cannot be used.

    Attributes:
        is_video: True (frames are a sequence: tracking mode).
        fps: mean image rate of the topic [Hz] (None for a single message).
        image_topic, camera_info_topic (or None), image_type: what is read.
        skipped: ``Counter`` of unusable messages by reason (``unsupported_encoding``,
            ``corrupt_compressed``, ``camera_info_size``, ``undeserializable``, ...).

    Raises:
        InputError: the bag cannot be opened (missing, not a bag, truncated storage file),
            has no image topic, several and none chosen, or a named topic it does not
            have; the message lists the bag's topics. Iteration raises InputError when the
            bag turns out truncated or corrupt in the middle, naming how far it got, and at
            the end when no message was usable (naming the counts by reason).
    """

    is_video = True

    def __init__(self, path, image_topic: Optional[str] = None, camera_info_topic: Optional[str] = None,
                 max_frames: Optional[int] = None, on_skip: Optional[Callable[[str, str], None]] = None):
        self.path = Path(path)
        self.max_frames = max_frames
        self.on_skip = on_skip
        self.skipped: Dict[str, int] = collections.Counter()
        with self._reader() as reader:
            topics = {c.topic: c.msgtype for c in reader.connections}
            self.image_topic = self._image_topic(topics, image_topic)
            self.image_type = topics[self.image_topic]
            self.camera_info_topic = self._info_topic(topics, camera_info_topic)
            conns = [c for c in reader.connections if c.topic == self.image_topic]
            self.image_msgdef = (conns[0].msgdef.data, conns[0].digest)
            self._count = sum(c.msgcount for c in conns)
            self._infos = self._read_infos(reader) if self.camera_info_topic else []
            info_conns = [c for c in reader.connections if c.topic == self.camera_info_topic]
            self.info_msgdef = (info_conns[0].msgdef.data, info_conns[0].digest) if info_conns else None
            duration = reader.duration * 1e-9
        self.fps = (self._count - 1) / duration if self._count > 1 and duration > 0 else None

    def _reader(self):
        from rosbags.highlevel import AnyReader, AnyReaderError

        if not self.path.exists():
            raise InputError(f"input not found: {self.path}")
        try:
            reader = AnyReader([self.path])
            reader.open()
        except (AnyReaderError, OSError, ValueError) as e:
            hint = " (a truncated MCAP file, e.g. a recording cut by power loss; `mcap recover` " \
                   "can repair it)" if "magic" in str(e).lower() else ""
            raise InputError(f"cannot read bag {self.path}: {e}{hint}") from None
        return _Closing(reader)

    def _image_topic(self, topics: Dict[str, str], wanted: Optional[str]) -> str:
        images = sorted(t for t, m in topics.items() if m in IMAGE_TYPES)
        if wanted:
            if topics.get(wanted) not in IMAGE_TYPES:
                what = f"is {topics[wanted]}" if wanted in topics else "is not in the bag"
                raise InputError(f"--image-topic {wanted} {what}; image topics of {self.path}: "
                                 f"{_listing(topics, IMAGE_TYPES)}")
            return wanted
        if not images:
            raise InputError(f"no sensor_msgs/Image or CompressedImage topic in bag {self.path}; "
                             f"its topics: {_listing(topics)}")
        if len(images) > 1:
            raise InputError(f"bag {self.path} has {len(images)} image topics, choose one with --image-topic: "
                             f"{_listing(topics, IMAGE_TYPES)}")
        return images[0]

    def _info_topic(self, topics: Dict[str, str], wanted: Optional[str]) -> Optional[str]:
        if wanted:
            if topics.get(wanted) != CAMERA_INFO_TYPE:
                what = f"is {topics[wanted]}" if wanted in topics else "is not in the bag"
                raise InputError(f"--camera-info-topic {wanted} {what}; CameraInfo topics of {self.path}: "
                                 f"{_listing(topics, (CAMERA_INFO_TYPE,))}")
            return wanted
        base = self.image_topic
        for suffix in ("/compressed", "/compressedDepth"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
        beside = base.rsplit("/", 1)[0] + "/camera_info"
        return beside if topics.get(beside) == CAMERA_INFO_TYPE else None

    def _read_infos(self, reader) -> List[Tuple[int, object, bytes]]:
        conns = [c for c in reader.connections if c.topic == self.camera_info_topic]
        out = []
        for conn, _, raw, msg in self._messages(reader, conns, "CameraInfo"):
            if msg is not None:
                out.append((_stamp_ns(msg), msg, bytes(raw)))
        out.sort(key=lambda x: x[0])
        return out

    def _messages(self, reader, conns, what: str):
        """(connection, log time, raw, message or None) of ``conns``; an undeserializable
        message is counted; a storage error mid-way is an InputError."""
        from rosbags.highlevel import AnyReaderError

        it = reader.messages(connections=conns)
        n = 0
        while True:
            try:
                conn, t, raw = next(it)
            except StopIteration:
                return
            except Exception as e:  # rosbags' storage readers raise several kinds here
                raise InputError(f"bag {self.path} is truncated or corrupt after {n} {what} messages: "
                                 f"{type(e).__name__}: {e}") from None
            n += 1
            try:
                msg = reader.deserialize(raw, conn.msgtype)
            except AnyReaderError as e:
                self._skip("undeserializable", f"a {what} message on {conn.topic} cannot be deserialized: {e}")
                msg = None
            yield conn, t, raw, msg

    def _skip(self, reason: str, message: str) -> None:
        self.skipped[reason] += 1
        if self.on_skip is not None:
            self.on_skip(reason, message)

    def camera_info_for(self, stamp: int):
        """(CameraInfo, raw) with the stamp nearest to ``stamp`` [ns], or (None, None)."""
        if not self._infos:
            return None, None
        stamps = [s for s, _, _ in self._infos]
        i = bisect.bisect_left(stamps, stamp)
        near = min((j for j in (i - 1, i) if 0 <= j < len(stamps)), key=lambda j: abs(stamps[j] - stamp))
        return self._infos[near][1], self._infos[near][2]

    def __len__(self) -> int:
        return self._count if self.max_frames is None else min(self._count, self.max_frames)

    def __iter__(self) -> Iterator[BagFrame]:
        with self._reader() as reader:
            conns = [c for c in reader.connections if c.topic == self.image_topic]
            index, first = 0, None
            for _, log_time, raw, msg in self._messages(reader, conns, "image"):
                if self.max_frames is not None and index >= self.max_frames:
                    return
                if msg is None:
                    continue
                try:
                    rgb = to_rgb(msg)
                except ImageDecodeError as e:
                    self._skip(e.reason, f"{self.image_topic} at {_stamp_ns(msg) * 1e-9:.6f} s: {e}")
                    continue
                stamp = _stamp_ns(msg)
                info, info_raw = self.camera_info_for(stamp)
                if info is not None and (int(info.width), int(info.height)) != (rgb.shape[1], rgb.shape[0]):
                    self._skip("camera_info_size", f"{self.image_topic} at {stamp * 1e-9:.6f} s is "
                               f"{rgb.shape[1]}x{rgb.shape[0]} but {self.camera_info_topic} says "
                               f"{info.width}x{info.height}")
                    continue
                first = stamp if first is None else first
                yield BagFrame(index, rgb, time_s=(stamp - first) * 1e-9, stamp_ns=stamp,
                               frame_id=str(msg.header.frame_id), log_time_ns=int(log_time), camera_info=info,
                               raw=bytes(raw), info_raw=info_raw)
                index += 1
        if index == 0 and self.skipped:
            raise InputError(f"no usable frame on {self.image_topic} of {self.path}: skipped "
                             + ", ".join(f"{n} x {r}" for r, n in sorted(self.skipped.items())))

    def summary(self) -> Dict[str, object]:
        """The topics read and the messages skipped by reason (``FrameStream.summary``)."""
        return {"image_topic": self.image_topic, "camera_info_topic": self.camera_info_topic,
                "skipped": dict(self.skipped)}


class _Closing:
    """Context manager closing an opened rosbags reader."""

    def __init__(self, reader):
        self.reader = reader

    def __enter__(self):
        return self.reader

    def __exit__(self, *exc):
        self.reader.close()


def hand_mesh_typestore():
    """rosbags typestore of ROS 2 Kilted plus ``hand_mesh_msgs`` from its ``.msg`` files
    (the installed package's share folder, else this source tree's)."""
    from rosbags.typesys import Stores, get_typestore, get_types_from_msg

    store = get_typestore(Stores.ROS2_KILTED)
    folder = _msg_folder()
    types = {}
    for f in sorted(folder.glob("*.msg")):
        types.update(get_types_from_msg(f.read_text(), f"hand_mesh_msgs/msg/{f.stem}"))
    store.register(types)
    return store


def _msg_folder() -> Path:
    candidates = []
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
        try:
            candidates.append(Path(get_package_share_directory("hand_mesh_msgs")) / "msg")
        except (PackageNotFoundError, LookupError, OSError, ValueError):  # OSError: AMENT_PREFIX_PATH unset
            pass
    except ImportError:
        pass
    try:
        import hand_mesh_msgs
        # <prefix>/lib/pythonX.Y/site-packages/hand_mesh_msgs -> <prefix>/share/hand_mesh_msgs/msg
        candidates.append(Path(hand_mesh_msgs.__file__).resolve().parents[4] / "share" / "hand_mesh_msgs" / "msg")
    except (ImportError, IndexError, TypeError):
        pass
    candidates.append(Path(__file__).resolve().parents[1] / "hand_mesh_msgs" / "msg")
    for c in candidates:
        if (c / "HandMesh.msg").is_file():
            return c
    raise FileNotFoundError("hand_mesh_msgs/msg/HandMesh.msg not found (looked in: "
                            + ", ".join(map(str, candidates)) + ")")


class BagWriter:
    """An MCAP rosbag2 of the CLI's outputs.

    Args:
        path: ``OUT.mcap`` -> one MCAP file (its rosbag2 metadata inside, as
            ``ros2 bag play OUT.mcap`` and Foxglove read it); any other name -> a rosbag2
            folder (``metadata.yaml`` + ``<name>.mcap``).
        overwrite: replace an existing file / folder; else it is an error.

    Raises:
        InputError: the path exists and ``overwrite`` is False.
        ImportError: the ROS 2 Python messages are not importable (message names what).
    """

    def __init__(self, path, overwrite: bool = False):
        from rosbags.rosbag2 import StoragePlugin, Writer

        try:
            from rclpy.serialization import serialize_message
        except ImportError as e:
            raise ImportError(f"--output-bag needs the ROS 2 Python messages (rclpy, hand_mesh_msgs, "
                              f"visualization_msgs, tf2_msgs): source your ROS 2 install ({e})") from None
        self.path = Path(path)
        if self.path.exists() or self.path.is_symlink():
            if not overwrite:
                raise InputError(f"output bag exists: {self.path} (use --overwrite to replace it)")
            _remove(self.path)
        self.single_file = self.path.suffix == ".mcap"
        self._dir = self.path.with_name(f".{self.path.name}.partial") if self.single_file else self.path
        if self.single_file and self._dir.exists():
            _remove(self._dir)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.typestore = hand_mesh_typestore()
        self._serialize = serialize_message
        self._writer = Writer(self._dir, version=9, storage_plugin=StoragePlugin.MCAP)
        self._writer.open()
        self._conns: Dict[str, object] = {}
        self.counts: Dict[str, int] = collections.Counter()

    def _connection(self, topic: str, msgtype: str, msgdef: Optional[Tuple[str, str]] = None):
        conn = self._conns.get(topic)
        if conn is None:
            if msgdef is not None and msgdef[0] and msgdef[1]:
                conn = self._writer.add_connection(topic, msgtype, msgdef=msgdef[0], rihs01=msgdef[1])
            else:
                conn = self._writer.add_connection(topic, msgtype, typestore=self.typestore)
            self._conns[topic] = conn
        return conn

    def write(self, topic: str, msg, time_ns: int) -> None:
        """Write an rclpy message (its type from its class) at ``time_ns`` [ns]."""
        cls = type(msg)
        msgtype = f"{cls.__module__.split('.')[0]}/msg/{cls.__name__}"
        self.write_raw(topic, msgtype, self._serialize(msg), time_ns)

    def write_raw(self, topic: str, msgtype: str, data: bytes, time_ns: int,
                  msgdef: Optional[Tuple[str, str]] = None) -> None:
        """Write a serialized (CDR) message; ``msgdef`` = (definition, RIHS01 hash) to keep
        those of the bag it came from (default: from the typestore)."""
        self._writer.write(self._connection(topic, msgtype, msgdef), int(time_ns), data)
        self.counts[topic] += 1

    def close(self) -> None:
        """Finish the bag (summary, metadata); a single ``.mcap`` is moved into place."""
        self._writer.close()
        if self.single_file:
            shutil.move(str(self._dir / f"{self._dir.name}.mcap"), str(self.path))
            shutil.rmtree(self._dir)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    else:
        p.unlink()
