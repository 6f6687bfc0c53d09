"""A camera-rate load beside a graph: 640x480 RGB images on one topic at a fixed rate."""

import argparse
import sys
from typing import Optional

import numpy as np
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import Image
from visual_rl_stack.ros.bringup import run_node
from visual_rl_stack.ros.msg_conversions import array_to_image
from visual_rl_stack.ros.topics import SENSOR_QOS

LOAD_TOPIC = '/load/color/image_raw'


class CameraLoad(Node):
    """Publishes a changing 640x480 rgb8 image ``hz`` times per wall-clock second."""

    def __init__(self, hz: float, width: int = 640, height: int = 480):
        super().__init__('camera_load')
        if not hz > 0:
            raise ValueError(f'camera_load: --hz must be > 0, got {hz}')
        self.frame = np.zeros((height, width, 3), np.uint8)
        self.count = 0
        self.publisher = self.create_publisher(Image, LOAD_TOPIC, SENSOR_QOS)
        self.create_timer(1.0 / hz, self._publish, clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _publish(self) -> None:
        self.count += 1
        self.frame[:, :, 0] = self.count % 256
        self.publisher.publish(array_to_image(self.frame, 'rgb8', self.get_clock().now().to_msg(),
                                              'load_camera'))


def main(args: Optional[list[str]] = None) -> int:
    """Publish until Ctrl-C; ``--hz`` (default 100) before any ROS arguments."""
    argv = sys.argv[1:] if args is None else args
    ours = argv[:argv.index('--ros-args')] if '--ros-args' in argv else argv
    parser = argparse.ArgumentParser(prog='camera_load')
    parser.add_argument('--hz', type=float, default=100.0)
    options = parser.parse_args(ours)
    return run_node(lambda: CameraLoad(options.hz), ['camera_load', *argv[len(ours):]])


if __name__ == '__main__':
    sys.exit(main())
