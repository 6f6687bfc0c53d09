"""
Convert between numpy arrays and standard ROS 2 messages without cv_bridge.

Every node and the bag tools use these functions, so an image published by the
simulator, recorded in a bag and read back is the same array everywhere.
"""

from typing import Sequence

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Pose, PoseStamped
import numpy as np
from sensor_msgs.msg import CameraInfo, Image, JointState, PointCloud2, PointField
from std_msgs.msg import Float32MultiArray, MultiArrayDimension
from visual_rl_stack.core.image_buffers import ConversionError, ENCODINGS


def stamp_from_seconds(seconds: float) -> Time:
    """Build a ``builtin_interfaces/Time`` from seconds."""
    nanos = int(round(seconds * 1e9))
    return Time(sec=nanos // 1_000_000_000, nanosec=nanos % 1_000_000_000)


def stamp_to_seconds(stamp: Time) -> float:
    """Turn a ``builtin_interfaces/Time`` into float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def array_to_image(array: np.ndarray, encoding: str, stamp: Time, frame_id: str) -> Image:
    """Pack an HxW or HxWxC array into a ``sensor_msgs/Image`` (little endian)."""
    if encoding not in ENCODINGS:
        raise ConversionError(f'unsupported encoding {encoding!r}; use one of {sorted(ENCODINGS)}')
    dtype, channels = ENCODINGS[encoding]
    array = np.ascontiguousarray(array, dtype=dtype)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] != channels:
        raise ConversionError(
            f'array of shape {array.shape} does not fit encoding {encoding} ({channels} channels)')
    height, width = array.shape[:2]
    msg = Image(height=height, width=width, encoding=encoding, is_bigendian=0,
                step=width * channels * array.itemsize)
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.data = array.tobytes()
    return msg


def make_camera_info(K: np.ndarray, width: int, height: int, stamp: Time,
                     frame_id: str) -> CameraInfo:
    """Build a distortion-free pinhole ``sensor_msgs/CameraInfo``."""
    K = np.asarray(K, dtype=float).reshape(3, 3)
    msg = CameraInfo(width=int(width), height=int(height), distortion_model='plumb_bob')
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.d = [0.0] * 5
    msg.k = K.ravel().tolist()
    msg.r = np.eye(3).ravel().tolist()
    msg.p = np.hstack([K, np.zeros((3, 1))]).ravel().tolist()
    return msg


def make_pose(position: Sequence[float], orientation_xyzw: Sequence[float]) -> Pose:
    """Build a ``geometry_msgs/Pose`` from a position and an xyzw quaternion."""
    pose = Pose()
    pose.position.x, pose.position.y, pose.position.z = (float(v) for v in position)
    q = pose.orientation
    q.x, q.y, q.z, q.w = (float(v) for v in orientation_xyzw)
    return pose


def make_pose_stamped(position: Sequence[float], orientation_xyzw: Sequence[float],
                      stamp: Time, frame_id: str) -> PoseStamped:
    """Build a ``geometry_msgs/PoseStamped``."""
    msg = PoseStamped(pose=make_pose(position, orientation_xyzw))
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    return msg


def pose_to_arrays(pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """Return (position xyz, quaternion xyzw) of a ``geometry_msgs/Pose``."""
    p, q = pose.position, pose.orientation
    return np.array([p.x, p.y, p.z]), np.array([q.x, q.y, q.z, q.w])


def pose_to_matrix(pose: Pose) -> np.ndarray:
    """Return the 4x4 homogeneous transform of a ``geometry_msgs/Pose``."""
    position, (x, y, z, w) = pose_to_arrays(pose)
    T = np.eye(4)
    T[:3, :3] = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    T[:3, 3] = position
    return T


def matrix_to_quaternion(R: np.ndarray) -> np.ndarray:
    """Return the xyzw quaternion of a 3x3 rotation matrix (Shepperd's method)."""
    trace = R[0, 0] + R[1, 1] + R[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, s / 4]
    else:
        i = int(np.argmax(np.diag(R)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + R[i, i] - R[j, j] - R[k, k])
        q = [0.0, 0.0, 0.0, (R[k, j] - R[j, k]) / s]
        q[i], q[j], q[k] = s / 4, (R[j, i] + R[i, j]) / s, (R[k, i] + R[i, k]) / s
    return np.asarray(q) / np.linalg.norm(q)


def make_joint_state(names: Sequence[str], positions: Sequence[float],
                     velocities: Sequence[float], efforts: Sequence[float],
                     stamp: Time) -> JointState:
    """
    Build a ``sensor_msgs/JointState`` with every field filled.

    Efforts are always filled: a message ending in an empty sequence can be
    serialised with trailing padding that some bag readers reject.
    """
    msg = JointState(name=list(names), position=[float(v) for v in positions],
                     velocity=[float(v) for v in velocities],
                     effort=[float(v) for v in efforts])
    msg.header.stamp = stamp
    return msg


def make_labelled_array(fields: dict[str, np.ndarray]) -> Float32MultiArray:
    """
    Flatten named vectors into a ``Float32MultiArray``.

    Each field becomes one labelled dimension; fields are stored back to back
    in order, so labels and sizes are enough to split the data again.
    """
    msg = Float32MultiArray()
    values = []
    for name, value in fields.items():
        flat = np.asarray(value, dtype=np.float32).ravel()
        msg.layout.dim.append(MultiArrayDimension(label=name, size=flat.size, stride=flat.size))
        values.append(flat)
    msg.data = np.concatenate(values).tolist() if values else []
    return msg


def labelled_array_to_dict(msg: Float32MultiArray) -> dict[str, np.ndarray]:
    """Invert :func:`make_labelled_array`."""
    data = np.asarray(msg.data, dtype=np.float32)
    fields = {}
    offset = msg.layout.data_offset
    for dim in msg.layout.dim:
        if offset + dim.size > data.size:
            raise ConversionError(f'field {dim.label!r} runs past the end of the array')
        fields[dim.label] = data[offset:offset + dim.size].copy()
        offset += dim.size
    return fields


#: Point layout of the clouds we publish (16 bytes a point).
CLOUD_DTYPE = np.dtype({'names': ['x', 'y', 'z', 'rgb'],
                        'formats': ['<f4', '<f4', '<f4', '<f4'],
                        'offsets': [0, 4, 8, 12], 'itemsize': 16})


def to_point_cloud2(points: np.ndarray, colors: np.ndarray, stamp: Time,
                    frame_id: str) -> PointCloud2:
    """Pack points and uint8 colours into an unordered ``sensor_msgs/PointCloud2``."""
    packed = np.zeros(len(points), dtype=CLOUD_DTYPE)
    for axis, name in enumerate('xyz'):
        packed[name] = points[:, axis]
    rgb = colors.astype(np.uint32)
    packed['rgb'] = ((rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]).view(np.float32)
    msg = PointCloud2(height=1, width=len(points), is_bigendian=False,
                      point_step=CLOUD_DTYPE.itemsize, row_step=CLOUD_DTYPE.itemsize * len(points),
                      is_dense=True)
    msg.fields = [PointField(name=name, offset=CLOUD_DTYPE.fields[name][1],
                             datatype=PointField.FLOAT32, count=1) for name in CLOUD_DTYPE.names]
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.data = packed.tobytes()
    return msg


def from_point_cloud2(msg: PointCloud2) -> tuple[np.ndarray, np.ndarray]:
    """
    Unpack x, y, z and packed rgb (float32 fields) of any point layout.

    Returns (N x 3 float32 points, N x 3 uint8 colours). Raises
    ConversionError when a field is missing or not float32.
    """
    fields = {f.name: f for f in msg.fields}
    for name in ('x', 'y', 'z', 'rgb'):
        if name not in fields or fields[name].datatype != PointField.FLOAT32:
            raise ConversionError(f'PointCloud2 needs a float32 field {name!r}; has '
                                  f'{[(f.name, f.datatype) for f in msg.fields]}')
    order = '>' if msg.is_bigendian else '<'
    dtype = np.dtype({'names': ['x', 'y', 'z', 'rgb'], 'formats': [order + 'f4'] * 4,
                      'offsets': [fields[n].offset for n in ('x', 'y', 'z', 'rgb')],
                      'itemsize': msg.point_step})
    count = msg.width * msg.height
    if msg.row_step < msg.point_step * msg.width or len(msg.data) < msg.row_step * msg.height:
        raise ConversionError(f'PointCloud2 buffer of {len(msg.data)} bytes is too small for '
                              f'{msg.width}x{msg.height} points of {msg.point_step} bytes')
    rows = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height, msg.row_step)
    records = np.ascontiguousarray(rows[:, :msg.point_step * msg.width]).view(dtype).reshape(count)
    points = np.stack([records[n] for n in 'xyz'], axis=1).astype(np.float32)
    rgb = records['rgb'].astype('<f4').view(np.uint32)
    colors = np.stack([(rgb >> 16) & 0xFF, (rgb >> 8) & 0xFF, rgb & 0xFF], axis=1)
    return points, colors.astype(np.uint8)
