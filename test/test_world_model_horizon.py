"""World model to agent end to end on bags collected in the test: train, resume, evaluate."""

from dataclasses import replace
import json

import numpy as np
import pytest
from rclpy.parameter import Parameter
import torch
from visual_rl_stack.core.policy import open_policy, policy_kind
from visual_rl_stack.data.collect import collect
from visual_rl_stack.evaluation.episodes import evaluate
from visual_rl_stack.evaluation.learning_curves import load_curve
from visual_rl_stack.residual_policy.policy_node import PolicyNode
from visual_rl_stack.world_model.behavior.env import make_view_envs, ViewTaskEnv
from visual_rl_stack.world_model.behavior.train_horizon import (Collector, evaluate_agent,
                                                                HorizonTrainer,
                                                                imagination_horizon)
from visual_rl_stack.world_model.dynamics.sequences import EmbedNormalizer, SequenceBuffer
from visual_rl_stack.world_model.dynamics.training import RSSMTrainSettings, train_rssm
from visual_rl_stack.world_model.mae.model import MAEConfig
from visual_rl_stack.world_model.mae.training import MAETrainSettings, train_mae
from visual_rl_stack.world_model.run_folder import load_world_model
from visual_rl_stack.world_model.settings import HorizonTrainSettings

torch.set_num_threads(1)
CONFIG = MAEConfig(views=('front', 'wrist'), image_size=32, patch_size=8, width=32,
                   encoder_layers=1, decoder_layers=1, heads=2, stem_channels=(16, 16))


@pytest.fixture(scope='module')
def world_model(tmp_path_factory):
    """Return a world-model run (tiny MAE, then RSSM) on three lift demonstrations."""
    bags = collect('lift', 3, tmp_path_factory.mktemp('bags'), views=CONFIG.views,
                   width=32, height=32)
    run = tmp_path_factory.mktemp('wm') / 'run'
    train_mae(MAETrainSettings('lift', str(bags), steps=5, batch=4, log_every=5,
                               val_batches=1), CONFIG, run, show_progress=False)
    summary = train_rssm(RSSMTrainSettings('lift', str(bags), steps=30, batch=4, length=8,
                                           log_every=10, val_batches=1), run, False)
    return run, summary


def test_the_dynamics_stage_writes_a_world_model_that_opens(world_model):
    run, summary = world_model
    rows = [json.loads(line) for line in (run / 'dynamics_metrics.jsonl').read_text().splitlines()]
    assert [r['step'] for r in rows] == [10, 20, 30]
    assert rows[-1]['train_loss'] < rows[0]['train_loss']
    assert (run / 'dynamics_curves.png').read_bytes()[:4] == b'\x89PNG'
    world = load_world_model(run)
    assert world.task == 'lift' and world.reward == 'planner_stages'
    assert world.key_horizon == summary['key_horizon'] >= 1
    assert world.embedder.size == 2 * 32 + 8


def test_a_world_model_without_dynamics_is_refused(tmp_path):
    with pytest.raises(ValueError, match='no rssm/'):
        load_world_model(tmp_path)


def test_train_horizon_runs_resumes_and_evaluates_as_a_policy(world_model, tmp_path, ros_context):
    run, _ = world_model
    out = tmp_path / 'agent'
    settings = HorizonTrainSettings('lift', str(run), reward='sparse', env_steps=40, num_envs=1,
                                    collect_steps=20, updates=2, batch=2, length=8, bc_steps=3,
                                    eval_every=2, eval_episodes=1)
    summary = HorizonTrainer(settings, out, show_progress=False).run()
    assert summary['env_steps'] == 40 and summary['iterations'] == 2
    assert summary['final_val_success'] in (0.0, 1.0)
    config = json.loads((out / 'config.json').read_text())
    assert config['kind'] == 'world_model' and policy_kind(out) == 'world_model'
    # The agent trains on sparse reward: the staged head of the world model was redrawn.
    assert load_world_model(out).reward == 'sparse'
    # The run is neither started over nor resumed with other settings.
    with pytest.raises(ValueError, match='already holds a training run; pass --resume'):
        HorizonTrainer(settings, out, show_progress=False)
    with pytest.raises(ValueError, match=r'other settings \(batch\)'):
        HorizonTrainer(replace(settings, batch=4), out, resume=True, show_progress=False)
    longer = replace(settings, env_steps=60)
    with (out / 'metrics.jsonl').open('a') as metrics:  # logged after the last saved state
        metrics.write(json.dumps({'iteration': 3, 'env_steps': 60, 'lost': True}) + '\n')
    resumed = HorizonTrainer(longer, out, resume=True, show_progress=False).run()
    assert resumed['env_steps'] == 60 and resumed['iterations'] == 3
    assert 'machine' in json.loads((out / 'summary.json').read_text())
    assert list((out / 'tensorboard').glob('events.out.tfevents.*'))
    rows = [json.loads(line) for line in (out / 'metrics.jsonl').read_text().splitlines()]
    assert [r['iteration'] for r in rows if 'env_steps' in r and r['iteration']] == [1, 2, 3]
    assert not any('lost' in r for r in rows)
    assert (out / 'curves.png').read_bytes()[:4] == b'\x89PNG'
    # Validation rows as residual RL writes them: vrl curves compares both kinds of run.
    assert load_curve(out).steps.tolist() == [40, 60]
    policy = open_policy(out)
    assert policy.views == CONFIG.views and policy.image_size == (32, 32)
    with pytest.raises(ValueError, match='needs the views'):
        policy.act_from_observation(np.zeros(20, np.float32), {'front': np.zeros((32, 32, 3))})
    with pytest.raises(ValueError, match='trained on task'):
        policy.check_compatible('stack', 'delta')
    result = evaluate('lift', str(out), 1, 1000, progress=False)
    assert result['episodes'] == 1 and 0.0 <= result['success_rate'] <= 1.0
    # The policy node drives the arm with it as with any policy: inactive, behind the filter.
    node = PolicyNode(context=ros_context, parameter_overrides=[
        Parameter('policy', value=str(out)), Parameter('device', value='cpu')])
    try:
        assert node.runner.kind == 'world_model' and node.action_mode == 'delta'
        assert not node.active and not node.needs_task
    finally:
        node.destroy_node()


def test_view_env_pays_the_staged_reward_and_draws_training_seeds():
    env = ViewTaskEnv('lift', ('front',), 32, reward='planner_stages')
    try:
        obs, info = env.reset()
        assert obs['images'].shape == (1, 32, 32, 3) and info['episode_seed'] >= 1 << 20
        rewards = [env.step(np.array([0, 0, -1, 0, 0, 0, 1], np.float32))[1] for _ in range(3)]
        # Moving the open gripper down toward the cube raises the staged progress.
        assert max(rewards) > 0
    finally:
        env.close()


def test_imagination_horizon_follows_the_key_horizon_within_bounds():
    assert imagination_horizon(7, None) == 7
    assert imagination_horizon(40, None) == 15 and imagination_horizon(2, None) == 5
    assert imagination_horizon(7, 3) == 3


class ReachTowardTarget:
    """A stand-in agent that moves the TCP straight at reach's target (from the state)."""

    last_embeds = np.zeros((2, 1), np.float32)

    def restart(self, copies):
        pass

    def act(self, images, states, explore):
        ee, target = states[:, :3], states[:, 15:18]
        step = np.clip((target - ee) / 0.05, -1.0, 1.0)
        return np.concatenate([step, np.zeros((len(states), 3)), np.ones((len(states), 1))],
                              axis=1).astype(np.float32)


def test_validation_counts_successes_despite_same_step_autoreset():
    envs = make_view_envs('reach', ('front',), 32, 'sparse', 2, asynchronous=False)
    try:
        assert evaluate_agent(envs, ReachTowardTarget(), 3, 2000) == 1.0
        collector = Collector(envs, ReachTowardTarget(), 0)
        buffer = SequenceBuffer(EmbedNormalizer(np.zeros(1), np.ones(1)))
        collector.collect(60, buffer)
        assert collector.successes and all(collector.successes)
        assert all(e.continues[-1] == 0.0 and e.rewards[-1] == 1.0 for e in buffer.episodes)
    finally:
        envs.close()
