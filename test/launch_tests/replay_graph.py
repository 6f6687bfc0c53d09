"""``replay.launch.py``, with the simulator standing in for ``ros2 bag play`` of a sim bag."""

from launch_probe import GraphTest, launch_file_description, median_period
from launch_probe import TestCleanExit  # noqa: F401 - post-shutdown checks, run by launch_test
import launch_ros.actions
import launch_testing.markers
from sensor_msgs.msg import Image, PointCloud2
from visual_rl_stack.ros import topics

DOMAIN_ID = 152


@launch_testing.markers.keep_alive
def generate_test_description():
    """Start the replay graph and a sim node publishing what a recorded sim bag holds."""
    player = launch_ros.actions.Node(
        package='visual_rl_stack', executable='sim_node', name='sim_node',
        parameters=[{'task': 'lift', 'cameras': ['front', 'side', 'wrist']}])
    return launch_file_description('replay.launch.py', {}, DOMAIN_ID, extra=(player,))


class TestReplayGraph(GraphTest):
    """The camera node follows /clock and fuses the played views."""

    domain_id = DOMAIN_ID

    def test_the_camera_node_follows_the_played_clock(self):
        probe = self.probe
        tiled = probe.watch(topics.MULTIVIEW_IMAGE, Image, topics.SENSOR_QOS)
        clouds = probe.watch(topics.POINTS, PointCloud2, topics.SENSOR_QOS)
        probe.wait_for_nodes({'camera_node', 'sim_node'})
        self.assertEqual(probe.parameters('camera_node', ['use_sim_time']),
                         {'use_sim_time': True})
        self.assertTrue(probe.spin_until(lambda: len(tiled) >= 20 and clouds, 90.0),
                        f'{len(tiled)} tiled images, {len(clouds)} clouds')
        self.assertAlmostEqual(median_period(tiled), 0.1, places=3)
        self.assertEqual((tiled[-1].height, tiled[-1].width), (128, 3 * 128))
