"""End to end in the simulator: lockstep graph, expert over DDS, recorded bag read back."""

import json

import numpy as np

from visual_rl_stack import topics
from visual_rl_stack.bags import bag_topics
from visual_rl_stack.dataset import BagDataset
from visual_rl_stack.demo import run_demo


def test_demo_graph_records_a_readable_successful_episode(tmp_path):
    report = run_demo(tmp_path, ['reach'], episodes=1, seed_start=1000)

    row = report['episodes'][0]
    assert row['success'], 'the expert driven through ROS should solve reach'
    assert json.loads((tmp_path / 'report.json').read_text())['tasks']['reach']['episodes'] == 1
    assert (tmp_path / 'multiview.png').stat().st_size > 0

    recorded = bag_topics(row['bag'])
    for topic in (topics.CLOCK, topics.JOINT_STATES, topics.ARM_DELTA_TWIST,
                  topics.GRIPPER_COMMAND, topics.MULTIVIEW_IMAGE, topics.color_topic('front'),
                  topics.depth_topic('wrist')):
        assert topic in recorded, f'{topic} missing from the bag'

    episode = BagDataset(tmp_path / 'bags', views=['front']).episode(0)
    assert len(episode.action) == row['steps']
    assert episode.success[-1]
    assert episode.images['front'].shape[1:] == (128, 128, 3)
    assert np.all(np.isfinite(episode.state))
