"""KAGI without ROS: the episode core, the kagi reward in residual RL workers, bag relabelling."""

from dataclasses import replace
import json

import numpy as np
import pytest
from scripted_backend import render_start, ScriptedBackend
from visual_rl_stack.cli.main import main
from visual_rl_stack.core.rewards import reward_names
from visual_rl_stack.data.collect import collect
from visual_rl_stack.residual_policy.resip.config import PPOConfig, ResidualTrainSettings
from visual_rl_stack.residual_policy.resip.env import ResidualTaskEnv
from visual_rl_stack.residual_policy.resip.residual_run import reward_options
from visual_rl_stack.vlm_affordance.backends import BACKENDS
from visual_rl_stack.vlm_affordance.episode_affordance import EpisodeAffordance, ERROR, OK, WARN

VIEWS = ('front', 'side')


@pytest.fixture(autouse=True)
def scripted(monkeypatch):
    """Register the scripted backend for these tests."""
    monkeypatch.setitem(BACKENDS, 'scripted', ScriptedBackend)


@pytest.fixture(scope='module')
def scene():
    """Render the front and side views and the TCP position of a lift episode's start."""
    return render_start(VIEWS)


def _episode(backend=ScriptedBackend, views=VIEWS):
    return EpisodeAffordance(backend, 'scripted', views)


def test_a_plan_rewards_progress_towards_the_waypoints(scene):
    frames, start, instruction = scene
    episode = _episode()
    episode.new_episode(instruction, 'seed0')
    plan = episode.plan_episode(frames)
    assert plan.ok and plan.level == OK and plan.waypoints.shape == (4, 3)
    assert plan.details['keypoint grasp'].startswith('ok')
    assert episode.step(start) == 0.0  # the start ends no transition
    heading = (plan.waypoints[0] - start) / np.linalg.norm(plan.waypoints[0] - start)
    rewards = [episode.step(start + 0.02 * k * heading) for k in range(1, 4)]
    assert 0.0 < rewards[0] < rewards[1] < rewards[2] < 0.5
    assert episode.step(plan.waypoints[0], sparse=1.0) == 1.0  # success dominates
    assert episode.progress == 1
    # The same episode and instruction is asked only once.
    calls = episode.query().backend.calls
    assert episode.make_plan(frames, instruction, 'seed0').result.cached
    assert episode.query().backend.calls == calls


def test_a_late_plan_replays_the_positions_seen_before_it(scene):
    frames, start, instruction = scene
    early, late = _episode(), _episode()
    for episode in (early, late):
        episode.new_episode(instruction, 'seed0')
    plan = early.plan_episode(frames)
    path = [start + (0.0, 0.0, -0.01 * k) for k in range(4)]
    paid = [early.step(p) for p in path]
    assert [late.step(p) for p in path] == [0.0] * 4  # sparse only until the plan arrives
    late.install(plan)
    assert late.progress == early.progress and late.tracker.dense == pytest.approx(paid[-1])


@pytest.mark.parametrize('case, expect, level', [
    ('no model', 'cannot be opened', ERROR),
    ('empty instruction', 'instruction is empty', WARN),
    ('missing view', "no frames of views ['wrist']", WARN),
    ('reply off the image', 'outside', WARN),
    ('NaN depth', 'depth hole', WARN),
])
def test_bad_input_gives_a_sparse_only_plan_that_says_why(scene, case, expect, level):
    frames, start, instruction = scene
    backend = {'no model': lambda: BACKENDS['qwen2_5_vl']('/no/such/model'),
               'reply off the image': lambda: ScriptedBackend(target=[5e3, 5e3])}.get(
                   case, ScriptedBackend)
    episode = _episode(backend, VIEWS + ('wrist',) if case == 'missing view' else VIEWS)
    if case == 'NaN depth':
        frames = {v: replace(f, depth=np.full_like(f.depth, np.nan)) for v, f in frames.items()}
    episode.new_episode('' if case == 'empty instruction' else instruction)
    plan = episode.plan_episode(frames)
    assert not plan.ok and plan.level == level and expect in plan.diagnostic, plan.diagnostic
    assert plan.diagnostic.startswith('sparse only')
    assert [episode.step(start), episode.step(start + 0.01), episode.step(start, 1.0)] == [
        0.0, 0.0, 1.0]


def test_kagi_reward_in_the_residual_env_queries_once_per_seed():
    """The env opens the registered reward by name; a seed's plan is cached."""
    assert 'kagi' in reward_names()
    env = ResidualTaskEnv('lift', reward='kagi', reward_options={'backend': 'scripted'})
    try:
        reward = env.reward_fn
        env.reset(seed=5)
        assert reward.episode.plan.ok, reward.episode.plan.diagnostic
        rewards = [env.step(np.array([0.0, 0.0, -0.01, 0.0, 0.0, 0.0, 1.0]))[1]
                   for _ in range(3)]
        assert all(0.0 <= r < 0.5 for r in rewards) and len(set(rewards)) > 1
        calls = reward.episode.query().backend.calls
        env.reset(seed=5)
        assert reward.episode.query().backend.calls == calls and len(reward.reset_seconds) == 2
    finally:
        env.close()
    # A model folder that is not there fails at once, not as a run on the sparse reward alone.
    with pytest.raises(ValueError, match='model folder /no/model does not exist'):
        ResidualTaskEnv('lift', reward='kagi',
                        reward_options={'backend': 'qwen2_5_vl', 'model': '/no/model'})


def test_the_kagi_reward_is_potential_based_with_ppo_gamma_by_default():
    """Potential form: r = gamma * phi' - phi of the progress the 'progress' form pays."""
    settings = ResidualTrainSettings(task='pick_place', base='unused', reward='kagi')
    options = reward_options(settings, 0.98)
    assert options['potential'] and options['gamma'] == 0.98
    assert options['backend'] == 'keypoint_net'
    progress_options = reward_options(replace(settings, reward_shaping='progress'),
                                      PPOConfig().gamma)
    assert not progress_options['potential']
    assert reward_options(replace(settings, reward='sparse'), PPOConfig().gamma) == {}
    with pytest.raises(ValueError, match='reward_shaping must be one of'):
        replace(settings, reward_shaping='hover').check()
    actions = [np.array([0.01, 0.0, -0.01, 0.0, 0.0, 0.0, 1.0])] * 4
    rewards = {}
    for name, opts in (('potential', options), ('progress', progress_options)):
        env = ResidualTaskEnv('pick_place', reward='kagi', reward_options=opts)
        try:
            env.reset(seed=3)
            assert env.reward_fn.episode.plan.ok, env.reward_fn.episode.plan.diagnostic
            start = env.reward_fn.episode.tracker._phi
            rewards[name] = [start] + [env.step(a)[1] for a in actions]
        finally:
            env.close()
    phi = rewards['progress']       # phi at the start, then after every step
    assert all(0.0 <= p < 0.5 for p in phi) and len(set(phi)) > 1
    assert rewards['potential'][1:] == pytest.approx(
        [0.98 * after - before for before, after in zip(phi, phi[1:])])


def test_relabel_writes_a_sidecar_and_a_plot_per_episode(tmp_path, capsys):
    bags = collect('lift', 1, tmp_path / 'bags', views=VIEWS, width=64, height=64)
    out = tmp_path / 'relabelled'
    assert main(['relabel', '--bags', str(bags), '--out', str(out), '--backend', 'scripted']) == 0
    assert '1 episodes relabelled' in capsys.readouterr().out
    record = json.loads((out / 'lift_seed0000.reward.json').read_text())
    steps = record['steps']
    assert record['level'] == OK and len(record['waypoints']) == 4
    assert len(steps['dense']) == len(steps['sparse']) == len(steps['combined']) > 5
    assert steps['sparse'][-1] == 1.0 and steps['combined'][-1] == 1.0  # the expert succeeds
    assert max(steps['progress']) >= 1 and 0.0 < max(steps['dense']) <= 0.5
    assert (out / 'lift_seed0000.reward.png').stat().st_size > 1000
    assert main(['relabel', '--bags', str(bags), '--out', str(out / 'vlm'), '--backend',
                 'qwen2_5_vl', '--model', str(tmp_path / 'none')]) == 2
    assert 'does not exist' in capsys.readouterr().err and not (out / 'vlm').exists()
