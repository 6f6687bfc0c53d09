"""The world-model node's core: stages along an expert episode, keyframes, bad input."""

import numpy as np
import pytest
import torch
from visual_rl_stack.sim.config import SimConfig
from visual_rl_stack.sim.experts import make_expert
from visual_rl_stack.sim.scene import TabletopSim
from visual_rl_stack.world_model.mae.model import MAEConfig, MultiViewMAE
from visual_rl_stack.world_model.monitor import ERROR, OK, WARN, WorldModelMonitor
from visual_rl_stack.world_model.planning.instruction_parser import parse_instruction

torch.set_num_threads(1)
TINY = MAEConfig(views=('front', 'wrist'), image_size=32, patch_size=8, width=32,
                 encoder_layers=1, decoder_layers=1, heads=2, stem_channels=(16, 16))


def step_inputs(sim: TabletopSim) -> tuple:
    """Return (arm joints, finger width, TCP position, task state) of the sim's current step."""
    robot = sim.robot_state()
    return (robot.joint_positions[:7], float(robot.gripper_width), robot.ee_position,
            sim.task_state())


@pytest.fixture(scope='module')
def stack_episode() -> list[tuple]:
    """Return the per-step inputs of one expert stack episode (seed 3)."""
    sim = TabletopSim(SimConfig(task='stack', cameras=()))
    try:
        sim.reset(seed=3)
        expert = make_expert('stack', 'delta', noise=0.0, rng=np.random.default_rng(3))
        steps = [step_inputs(sim) + (sim.instruction,)]
        for _ in range(sim.max_episode_steps):
            result = sim.step(expert.act(sim))
            steps.append(step_inputs(sim) + (sim.instruction,))
            if result.success:
                break
        assert result.success
        return steps
    finally:
        sim.close()


def test_stages_advance_in_order_along_an_expert_episode(stack_episode):
    monitor = WorldModelMonitor(parse_instruction)
    monitor.new_episode(stack_episode[0][-1])
    updates = [monitor.update(*step[:4]) for step in stack_episode]
    assert all(u.level == OK for u in updates), [u.message for u in updates if u.level != OK]
    indices = [u.stage_index for u in updates]
    assert indices[0] == 1 and indices == sorted(indices)
    stages = monitor.reward.stages
    assert updates[-1].stage_label == f'{len(stages) + 1} done' and updates[-1].progress == 1.0
    assert updates[0].stage_name == stages[0].name == 'reach green cube'
    progress = [u.progress for u in updates]
    assert progress[0] < 0.1 and np.all(np.diff(progress) > -0.05)
    # The expert closes and opens the gripper once each: at least those keyframes.
    assert sum(u.keyframe for u in updates) >= 2
    assert all(u.reward is None for u in updates) and monitor.task.name == 'stack'


def test_bad_input_gives_a_diagnostic_and_no_number(stack_episode):
    joints, width, ee, state, instruction = stack_episode[0]
    monitor = WorldModelMonitor(parse_instruction)
    before = monitor.update(joints, width, ee, state)
    assert before.level == WARN and 'no instruction' in before.message
    monitor.new_episode('fold the towel into a swan')
    refused = monitor.update(joints, width, ee, state)
    assert refused.level == ERROR and 'cannot plan' in refused.message
    assert refused.stage_index is None and refused.progress is None
    monitor.new_episode(instruction)
    waiting = monitor.update(joints, width, ee, None)
    assert waiting.level == WARN and waiting.stage_index is None
    nan = monitor.update(np.full(7, np.nan), width, ee, state)
    assert nan.level == ERROR and 'joints' in nan.message and nan.keyframe is None
    odd = monitor.update(joints, width, ee, {'mystery_position': np.zeros(3)})
    assert odd.level == ERROR and 'no task has' in odd.message
    lost = monitor.update(joints, width, np.full(3, np.nan), state)
    assert lost.level == ERROR and lost.stage_index is None


def test_the_world_model_source_reads_progress_from_the_views(stack_episode):
    torch.manual_seed(0)
    mae = MultiViewMAE(TINY).eval()
    monitor = WorldModelMonitor(parse_instruction, 'world_model', mae)
    joints, width, ee, _, instruction = stack_episode[0]
    monitor.new_episode(instruction)
    views = {v: np.full((32, 32, 3), 90, np.uint8) for v in TINY.views}
    update = monitor.update(joints, width, ee, None, views)
    assert update.level == OK and 0.0 <= update.reward <= 1.0
    assert update.progress == update.reward and update.stage_index >= 1
    missing = monitor.update(joints, width, ee, None, {'front': views['front']})
    assert missing.level == WARN and 'wrist' in missing.message and missing.reward is None
    small = {v: np.zeros((8, 8, 3), np.uint8) for v in TINY.views}
    wrong = monitor.update(joints, width, ee, None, small)
    assert wrong.level == WARN and wrong.reward is None and wrong.stage_index is None
    with pytest.raises(ValueError, match='state source'):
        WorldModelMonitor(parse_instruction, 'oracle')
