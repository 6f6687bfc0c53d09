"""``ros2 launch visual_rl_stack sim.launch.py task:=push``, started by the real launch system."""

from launch_probe import GraphTest, launch_file_description, median_period, START_TIMEOUT_S
from launch_probe import TestCleanExit  # noqa: F401 - post-shutdown checks, run by launch_test
import launch_testing.markers
from sensor_msgs.msg import Image
from std_msgs.msg import Float32, String
from visual_rl_stack.ros import topics

DOMAIN_ID = 150
NODES = {'sim_node', 'camera_node', 'affordance_node', 'world_model_node'}


@launch_testing.markers.keep_alive
def generate_test_description():
    """Start the simulated graph on task push (the shipped default is lift)."""
    return launch_file_description('sim.launch.py', {'task': 'push'}, DOMAIN_ID)


class TestSimGraph(GraphTest):
    """The four nodes come up; images and the dense reward flow at the control rate."""

    domain_id = DOMAIN_ID

    def test_nodes_topics_rates_and_arguments(self):
        probe = self.probe
        images = probe.watch(topics.color_topic('front'), Image, topics.SENSOR_QOS)
        rewards = probe.watch(topics.DENSE_REWARD, Float32)
        instructions = probe.watch(topics.TASK_INSTRUCTION, String, topics.LATCHED_QOS)
        seen = probe.wait_for_nodes(NODES)
        self.assertLessEqual(NODES, seen)
        self.assertEqual(probe.parameters('sim_node', ['task', 'control_hz']),
                         {'task': 'push', 'control_hz': 10.0})
        self.assertTrue(probe.spin_until(lambda: len(images) >= 30 and len(rewards) >= 10,
                                         START_TIMEOUT_S),
                        f'{len(images)} front images, {len(rewards)} dense rewards')
        # Stamps are sim time: one image per control step of 0.1 s, whatever the machine's load.
        self.assertAlmostEqual(median_period(images), 0.1, places=3)
        self.assertTrue(any('push' in m.data for m in instructions), instructions)
        # The dense reward follows the images in wall time too (a stalled node would not).
        before = len(rewards)
        probe.spin_for(5.0)
        self.assertGreaterEqual(len(rewards) - before, 10)
