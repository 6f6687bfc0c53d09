"""``sim.launch.py mode:=lockstep affordance:=false world_model:=false``: switches and stepping."""

from launch_probe import GraphTest, launch_file_description, stamps
from launch_probe import TestCleanExit  # noqa: F401 - post-shutdown checks, run by launch_test
import launch_testing.markers
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger
from visual_rl_stack.ros import topics

DOMAIN_ID = 151


@launch_testing.markers.keep_alive
def generate_test_description():
    """Start the simulator in lockstep with the camera node only."""
    return launch_file_description(
        'sim.launch.py', {'task': 'reach', 'mode': 'lockstep', 'affordance': 'false',
                          'world_model': 'false'}, DOMAIN_ID)


class TestLockstepGraph(GraphTest):
    """The switched-off nodes stay off; time moves only when /sim/step is called."""

    domain_id = DOMAIN_ID

    def test_only_the_switched_on_nodes_and_time_moves_per_step(self):
        probe = self.probe
        clocks = probe.watch(topics.CLOCK, Clock)
        images = probe.watch(topics.color_topic('front'), Image, topics.SENSOR_QOS)
        probe.wait_for_nodes({'sim_node', 'camera_node'})
        self.assertEqual(probe.parameters('sim_node', ['mode', 'task']),
                         {'mode': 'lockstep', 'task': 'reach'})
        probe.spin_for(3.0)
        self.assertEqual(probe.node_names(), {'sim_node', 'camera_node'})
        self.assertLessEqual(len(images), 1, 'lockstep published images without a step')
        before = len(images)
        for _ in range(3):
            response = probe.call(Trigger, topics.SIM_STEP, Trigger.Request())
            self.assertTrue(response is not None and response.success, response)
        self.assertTrue(probe.spin_until(lambda: len(images) >= before + 3, 20.0),
                        f'{len(images) - before} images after 3 steps')
        times = stamps(images[-3:])
        for earlier, later in zip(times, times[1:]):
            self.assertAlmostEqual(later - earlier, 0.1, places=3)
        self.assertTrue(probe.spin_until(
            lambda: clocks and clocks[-1].clock == images[-1].header.stamp, 10.0),
            'the /clock does not follow the steps')
