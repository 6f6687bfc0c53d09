"""``real.launch.py`` with no camera driver running: the nodes wait and say what for."""

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from launch_probe import GraphTest, launch_file_description
from launch_probe import TestCleanExit  # noqa: F401 - post-shutdown checks, run by launch_test
import launch_testing.markers
from visual_rl_stack.ros import topics

DOMAIN_ID = 153
NODES = {'camera_node', 'affordance_node', 'world_model_node'}


@launch_testing.markers.keep_alive
def generate_test_description():
    """Start the real-robot graph alone."""
    return launch_file_description('real.launch.py', {}, DOMAIN_ID)


class TestRealGraph(GraphTest):
    """config/real_graph.yaml is applied, topics are remapped onto the drivers', nodes wait."""

    domain_id = DOMAIN_ID

    def test_parameters_remappings_and_the_waiting_diagnostic(self):
        probe = self.probe
        diagnostics = probe.watch(topics.DIAGNOSTICS, DiagnosticArray)
        self.assertLessEqual(NODES, probe.wait_for_nodes(NODES))
        # Both differ from the camera node's defaults (three cameras, poses from topics).
        self.assertEqual(probe.parameters('camera_node', ['cameras', 'use_pose_topics']),
                         {'cameras': ['front', 'side'], 'use_pose_topics': False})
        self.assertEqual(probe.parameters('world_model_node', ['state_source']),
                         {'state_source': 'world_model'})
        subscribed = dict(probe.node.get_subscriber_names_and_types_by_node('camera_node', '/'))
        self.assertIn('/camera_front/color/image_raw', subscribed)
        self.assertIn('/camera_side/aligned_depth_to_color/image_raw', subscribed)
        self.assertNotIn(topics.color_topic('front'), subscribed)

        def waiting() -> bool:
            return any(status.level == DiagnosticStatus.WARN and 'waiting for the camera drivers'
                       in status.message and '/camera_front/color/image_raw' in status.message
                       for array in diagnostics for status in array.status)
        self.assertTrue(probe.spin_until(waiting, 30.0),
                        [s.message for a in diagnostics for s in a.status])
