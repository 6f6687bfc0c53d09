"""
Write and read rosbag2 bags (MCAP storage, metadata version 8) without rosbag2_py.

Bags are the stack's data set format, so every writer and reader goes through
this module: one storage format, one metadata version (8, which both Humble and
Jazzy play), one type store (Jazzy) and one error type that names the bag.
Messages are stored as the CDR bytes rclpy (and so DDS) produces, so a bag
written here is byte-for-byte what ``ros2 bag record`` or the recorder node
would have stored.
"""

from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
import importlib
from pathlib import Path
import struct
from typing import Iterable, Iterator, Optional

from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer, WriterError
from rosbags.serde import SerdeError
from rosbags.typesys import get_typestore, Stores
from rosbags.typesys.store import Typestore

#: rosbag2 metadata version written (8 plays on Humble and Jazzy; 9 only on Jazzy).
BAG_VERSION = 8
#: Storage plugin of every bag written.
STORAGE = StoragePlugin.MCAP
#: Name of the file that marks a folder as a rosbag2 bag.
METADATA_FILE = 'metadata.yaml'
#: Optional listing of the episodes in a folder of bags (written by ``vrl collect``).
INDEX_FILE = 'index.json'
#: Little-endian CDR encapsulation header (what rclpy emits on every platform we run on).
_CDR_LE = b'\x00\x01'
#: Trailing alignment padding rclpy may add after a final empty sequence.
_MAX_PADDING = 8
#: What rosbags raises on a damaged bag (it has no single error type for it).
_READ_ERRORS = (ReaderError, SerdeError, OSError, struct.error, ValueError, KeyError, IndexError)


class BagError(ValueError):
    """A bag cannot be written or read; the message names the bag and the reason."""


@dataclass(frozen=True)
class BagMessage:
    """One stored message: topic, ROS type name, log time (ns) and CDR bytes."""

    topic: str
    msgtype: str
    log_time: int
    data: bytes


@lru_cache(maxsize=1)
def typestore() -> Typestore:
    """Return the ROS 2 Jazzy type store, built once; it holds the message definitions."""
    return get_typestore(Stores.ROS2_JAZZY)


def ros_type_name(msg_class: type) -> str:
    """Return the ROS type name (``pkg/msg/Name``) of an rclpy message class or instance."""
    if not isinstance(msg_class, type):
        msg_class = type(msg_class)
    package = msg_class.__module__.split('.')[0]
    return f'{package}/msg/{msg_class.__name__}'


def message_class(msgtype: str) -> type:
    """Import the rclpy class of a ROS type name such as ``sensor_msgs/msg/Image``."""
    parts = msgtype.split('/')
    if len(parts) != 3 or parts[1] != 'msg':
        raise BagError(f'{msgtype!r} is not a ROS message type name (pkg/msg/Name)')
    try:
        return getattr(importlib.import_module(f'{parts[0]}.msg'), parts[2])
    except (ImportError, AttributeError) as exc:
        raise BagError(f'message type {msgtype!r} is not installed: {exc}') from exc


def is_known_type(msgtype: str) -> bool:
    """Return whether the Jazzy type store can describe ``msgtype`` (needed to store it)."""
    return msgtype in typestore().types


def serialize(msg: object) -> bytes:
    """Serialise an rclpy message to CDR exactly as a publisher puts it on the wire."""
    return serialize_message(msg)


def deserialize(message: BagMessage) -> object:
    """Decode a stored message into its rclpy message class."""
    return deserialize_message(message.data, message_class(message.msgtype))


def decode(message: BagMessage) -> object:
    """
    Decode a stored message into a rosbags dataclass (arrays come back as numpy).

    Faster than :func:`deserialize` for bulk reading. Unlike rosbags' own
    ``deserialize_cdr`` this accepts the few trailing padding bytes that rclpy
    writes after a final empty sequence (e.g. a JointState without efforts).
    """
    data = message.data
    if len(data) < 4 or data[:2] != _CDR_LE:
        raise BagError(f'{message.topic}: not little-endian CDR data ({message.msgtype})')
    store = typestore()
    msgdef = store.get_msgdef(message.msgtype)
    try:
        decoded, end = msgdef.deserialize_cdr_le(data[4:], 0, msgdef.cls, store)
    except (struct.error, UnicodeDecodeError, ValueError, IndexError) as exc:
        raise BagError(f'{message.topic}: cannot decode {message.msgtype}: {exc}') from exc
    if len(data) - 4 - end > _MAX_PADDING:
        raise BagError(f'{message.topic}: {len(data) - 4 - end} unexpected bytes after a '
                       f'{message.msgtype}')
    return decoded


def open_writer(path: Path) -> Writer:
    """Create and open a new MCAP bag (version 8) at ``path``; refuse existing paths."""
    path = Path(path)
    try:
        writer = Writer(path, version=BAG_VERSION, storage_plugin=STORAGE)
        writer.open()
    except WriterError as exc:
        raise BagError(f'cannot create bag {path}: {exc}') from exc
    return writer


def is_bag(path: Path) -> bool:
    """Return whether ``path`` is a rosbag2 folder (holds a metadata file)."""
    return (Path(path) / METADATA_FILE).is_file()


def find_bags(folder: Path) -> list[Path]:
    """
    Return the bags in ``folder`` (itself or its direct sub-folders), sorted by name.

    Raises BagError when the folder does not exist or holds no bag.
    """
    folder = Path(folder)
    if folder.is_file() and is_bag(folder.parent):
        raise BagError(f'{folder} is one file of a bag: pass the bag folder {folder.parent}')
    if not folder.is_dir():
        raise BagError(f'{folder} is not a folder (a bag is a folder with {METADATA_FILE})')
    if is_bag(folder):
        return [folder]
    bags = sorted(p for p in folder.iterdir() if p.is_dir() and is_bag(p))
    if not bags:
        raise BagError(f'no rosbag2 bags (folders with {METADATA_FILE}) in {folder}')
    return bags


def bag_topics(bag: Path) -> dict[str, str]:
    """Return topic -> ROS type name of a bag, read from its metadata."""
    with _open_reader(bag) as reader:
        return {c.topic: c.msgtype for c in reader.connections}


def bag_connections(bag: Path) -> list[tuple[str, str, list, int]]:
    """Return (topic, ROS type, stored offered QoS profiles, message count) per connection."""
    with _open_reader(bag) as reader:
        return [(c.topic, c.msgtype, list(getattr(c.ext, 'offered_qos_profiles', None) or []),
                 c.msgcount) for c in reader.connections]


def read_messages(bag: Path, topics: Optional[Iterable[str]] = None) -> Iterator[BagMessage]:
    """
    Yield the messages of ``bag`` in log-time order, optionally only from ``topics``.

    A truncated or corrupt bag raises BagError naming the bag, also when the
    damage is found half-way through.
    """
    wanted = None if topics is None else set(topics)
    with _open_reader(bag) as reader:
        connections = [c for c in reader.connections if wanted is None or c.topic in wanted]
        if not connections:
            return
        try:
            for connection, log_time, data in reader.messages(connections=connections):
                yield BagMessage(connection.topic, connection.msgtype, log_time, bytes(data))
        except _READ_ERRORS as exc:
            raise BagError(f'bag {bag} is truncated or corrupt: {exc}') from exc


@contextmanager
def _open_reader(bag: Path) -> Iterator[Reader]:
    """Open a bag for reading, turning every failure to open it into a BagError naming it."""
    bag = Path(bag)
    if not is_bag(bag):
        raise BagError(f'{bag} is not a rosbag2 bag (no {METADATA_FILE})')
    try:
        reader = Reader(bag)
        reader.open()
    except _READ_ERRORS as exc:
        raise BagError(f'bag {bag} is truncated or corrupt: {exc}') from exc
    try:
        yield reader
    finally:
        reader.close()
