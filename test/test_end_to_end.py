"""End to end in the simulator: lockstep graph, expert over DDS, recorded bag read back."""

import json

from conftest import make_residual_run
import numpy as np
from visual_rl_stack.data.bags import bag_topics
from visual_rl_stack.data.collect import collect
from visual_rl_stack.data.dataset import BagDataset
from visual_rl_stack.evaluation.demo import run_demo
from visual_rl_stack.residual_policy.diffusion_bc.training.config import BCTrainSettings
from visual_rl_stack.residual_policy.diffusion_bc.training.train_bc import train_bc
from visual_rl_stack.ros import topics

TINY = {'down_dims': (16, 32, 64), 'horizon': 8, 'n_action_steps': 4}


def test_demo_graph_records_a_readable_successful_episode(tmp_path):
    data = collect('lift', 1, tmp_path / 'data', views=('front',), width=32, height=32)
    policy = tmp_path / 'bc_run'
    train_bc(BCTrainSettings(task='lift', data=str(data), steps=5, batch_size=16, device='cpu'),
             policy, config_overrides=TINY, progress=False)
    residual = make_residual_run(policy, tmp_path / 'residual_run')
    report = run_demo(tmp_path / 'demo', ['reach'], episodes=1, seed_start=1000,
                      policies=[str(residual)], policy_episodes=1)
    tmp_path = tmp_path / 'demo'

    row = report['episodes'][0]
    assert row['success'], 'the expert driven through ROS should solve reach'
    assert json.loads((tmp_path / 'report.json').read_text())['tasks']['reach']['episodes'] == 1
    assert (tmp_path / 'multiview.png').stat().st_size > 0
    # The residual's own frozen base ran first, on its task through the policy node.
    bc_row, residual_row = report['policies']
    assert bc_row['policy'] == f'{residual} (its frozen base)'
    assert bc_row['task'] == 'lift' and bc_row['episodes'] == 1
    # Its chunks are sampled (noise scale 1): the report says so, as results may vary.
    assert bc_row['kind'] == 'BC, sampled (noise scale 1)'
    assert bc_row['inference_latency_ms']['chunks'] >= 1
    # BC + residual beside its base, on the same seeds.
    assert residual_row['kind'] == 'BC + residual, sampled (noise scale 1)'
    assert residual_row['task'] == 'lift'
    assert residual_row['seed_start'] == bc_row['seed_start']
    page = (tmp_path / 'report.md').read_text()
    assert f'| {residual} (its frozen base) | BC, sampled (noise scale 1) | lift |' in page
    assert f'| {residual} | BC + residual, sampled (noise scale 1) | lift |' in page

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
