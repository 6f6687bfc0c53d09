"""Residual RL on a frozen BC policy: batched base, environment, training run, evaluation."""

from dataclasses import replace
import json
import shutil

from conftest import make_residual_run, TINY_BC, tiny_lift_bc
import numpy as np
import pybullet as pb
import pytest
import torch
from visual_rl_stack.cli.main import main
from visual_rl_stack.core.observation import sim_observation
from visual_rl_stack.core.policy import open_policy, PolicyOptions
from visual_rl_stack.core.rewards import make_reward
from visual_rl_stack.data.collect import collect
from visual_rl_stack.residual_policy.diffusion_bc.batched_base import BatchedBasePolicy
from visual_rl_stack.residual_policy.diffusion_bc.model.diffusion_policy import DiffusionPolicy
from visual_rl_stack.residual_policy.diffusion_bc.runner import BCPolicyRunner
from visual_rl_stack.residual_policy.resip.agent import ResidualAgent, ResidualPolicyRunner
from visual_rl_stack.residual_policy.resip.config import PPOConfig, ResidualTrainSettings
from visual_rl_stack.residual_policy.resip.env import ResidualTaskEnv, TRAIN_SEED_FLOOR
from visual_rl_stack.residual_policy.resip.online_learner import OnlineResidualLearner
from visual_rl_stack.residual_policy.resip.train_residual import train_residual
from visual_rl_stack.sim.config import SimConfig
from visual_rl_stack.sim.rewards import SHAPING_METRES, UPRIGHT_RADIANS
from visual_rl_stack.sim.scene import StepResult, TabletopSim


@pytest.fixture(scope='module')
def base_run(tmp_path_factory):
    """Train a tiny state-based lift policy on two demonstrations."""
    return tiny_lift_bc(tmp_path_factory.mktemp('residual'), 2, 20, 32)


RUN_PPO = PPOConfig(epochs=2, critic_warmup_updates=1)  # the residual_run fixture's PPO


@pytest.fixture(scope='module')
def residual_run(base_run):
    """Train a residual for two short iterations in-process (synchronous envs)."""
    out = base_run.parent / 'rl'
    settings = ResidualTrainSettings(task='lift', base=str(base_run), envs=2, total_steps=80,
                                     rollout_steps=20, eval_every=1, val_episodes=2)
    summary = train_residual(out, settings, {'hidden_dims': (32,), 'critic_hidden_dims': (32,)},
                             RUN_PPO, progress=False, asynchronous=False)
    return out, summary


@pytest.mark.parametrize('noise_scale, action_steps, plans', [(1.0, None, 4), (0.0, 2, 6)])
def test_batched_base_follows_the_single_env_runner_exactly(base_run, noise_scale,
                                                            action_steps, plans):
    runner = BCPolicyRunner(base_run, 'cpu', num_inference_steps=4, seed=3,
                            noise_scale=noise_scale, action_steps=action_steps)
    batched = BatchedBasePolicy(DiffusionPolicy.from_checkpoint(base_run / 'checkpoint'), 1,
                                num_inference_steps=4, seed=3, noise_scale=noise_scale,
                                action_steps=action_steps)
    rng = np.random.default_rng(0)
    for step in range(11):
        if step == 6:  # a new episode mid-chunk re-plans at once in both
            runner.reset()
            batched.reset()
        state = rng.normal(size=runner.config.state_dim).astype(np.float32)
        np.testing.assert_allclose(batched.act(state[None])[0], runner.act_from_observation(state),
                                   rtol=1e-5, atol=1e-6)
    # Plans at steps 0, 4, 6, 10 (4 actions per chunk) or every second step (2).
    assert batched.plans == len(runner.latencies_s) == plans


def test_batched_base_plans_only_for_envs_that_need_it(base_run):
    batched = BatchedBasePolicy(DiffusionPolicy.from_checkpoint(base_run / 'checkpoint'), 3)
    states = np.zeros((3, batched.history.shape[-1]), np.float32)
    batched.act(states)
    batched.reset(np.array([False, True, False]))
    batched.act(states)
    assert batched.plans == 2 and batched.cursor.tolist() == [2, 1, 2]
    with pytest.raises(ValueError, match='shape'):
        batched.act(states[:2])


def test_env_observes_the_bc_state_and_keeps_training_seeds_apart():
    env = ResidualTaskEnv('lift')
    try:
        obs, info = env.reset(seed=1000)
        assert info['episode_seed'] == 1000
        np.testing.assert_array_equal(obs, sim_observation(env.sim)[0])
        _, info = env.reset()
        assert info['episode_seed'] >= TRAIN_SEED_FLOOR
        obs, reward, terminated, truncated, info = env.step(np.array([0, 0, 0, 0, 0, 0, 1.0]))
        assert obs.shape == env.observation_space.shape and reward == 0.0
        assert not terminated and info['success'] is False
    finally:
        env.close()


def test_subtask_reward_pays_each_new_subtask_once():
    reward = make_reward('subtasks')
    step = StepResult(0.0, False, False, False, {'stages_completed': 1})
    assert reward(None, step) == 1.0 and reward(None, step) == 0.0
    assert reward(None, StepResult(1.0, True, True, False, {'stages_completed': 1})) == 1.0
    reward.reset(None)
    assert reward(None, step) == 1.0
    with pytest.raises(ValueError, match='unknown reward'):
        make_reward('dense-ish')


def test_shaped_reward_pays_the_goal_distance_closed():
    sim = TabletopSim(SimConfig(task='peg_insert', cameras=()))
    try:
        sim.reset(seed=3)
        reward = make_reward('shaped', 'peg_insert')
        reward.reset(sim)
        start = sim.task.goal_distance()
        # Lift the peg over the hole, then into it: the distance falls to about 0.
        hole = sim.task.hole
        sim.task.place(sim.task.peg, (hole[0], hole[1], hole[2] + 0.1), sim.task.hole_yaw)
        sim.task.invalidate()
        over = reward(sim, StepResult(0.0, False, False, False, {}))
        assert over == pytest.approx((start - sim.task.goal_distance()) / SHAPING_METRES)
        assert over > 0
        sim.task.place(sim.task.peg, (hole[0], hole[1], 0.0405), sim.task.hole_yaw)
        sim.task.invalidate()
        assert sim.task.goal_distance() == pytest.approx(0.0, abs=1e-3)
        inserted = reward(sim, StepResult(1.0, True, True, False, {}))
        assert inserted > 1.0
        # The whole episode's shaping telescopes to start minus end distance.
        assert over + inserted - 1.0 == pytest.approx(start / SHAPING_METRES, abs=0.03)
    finally:
        sim.close()
    with pytest.raises(ValueError, match='goal distance'):
        make_reward('shaped', 'lift')


def test_upright_reward_charges_the_peg_tipping_over():
    still = StepResult(0.0, False, False, False, {})
    sim = TabletopSim(SimConfig(task='peg_insert', cameras=()))
    try:
        sim.reset(seed=5)
        reward = make_reward('upright', 'peg_insert')
        reward.reset(sim)
        assert sim.task.tilt() == pytest.approx(0.0, abs=1e-3)
        assert reward(sim, still) == pytest.approx(0.0, abs=1e-6)
        position = sim.task.pose(sim.task.peg)[0]

        def lean(angle: float) -> None:
            orientation = pb.getQuaternionFromEuler((angle, 0.0, 0.3))
            pb.resetBasePositionAndOrientation(sim.task.peg, position, orientation,
                                               physicsClientId=sim.task.client)
            sim.task.invalidate()

        lean(np.pi / 2)
        assert sim.task.tilt() == pytest.approx(np.pi / 2, abs=1e-6)
        assert reward(sim, still) == pytest.approx(-1.0, abs=1e-3)
        lean(np.pi / 6)
        assert reward(sim, still) == pytest.approx(np.pi / 3 / UPRIGHT_RADIANS, abs=1e-6)
        lean(0.0)
        assert reward(sim, StepResult(1.0, True, True, False, {})) == pytest.approx(
            1.0 + np.pi / 6 / UPRIGHT_RADIANS, abs=1e-6)
    finally:
        sim.close()
    with pytest.raises(ValueError, match='needs a task with a tilt \\(peg_insert\\)'):
        make_reward('upright', 'stack')
    with pytest.raises(RuntimeError, match='reset'):
        make_reward('upright')(None, still)


def test_training_writes_a_complete_run(residual_run):
    out, summary = residual_run
    for name in ('config.json', 'checkpoint', 'residual', 'residual_last', 'metrics.jsonl',
                 'validation.jsonl', 'learning_curve.png', 'summary.json', 'training_state.pt',
                 'tensorboard'):
        assert (out / name).exists(), name
    rows = [json.loads(line) for line in (out / 'metrics.jsonl').read_text().splitlines()]
    assert [r['iteration'] for r in rows] == [0, 1, 2]
    assert rows[-1]['env_steps'] == summary['env_steps'] == 80
    assert all('val_success' in r for r in rows)
    validations = [json.loads(line)
                   for line in (out / 'validation.jsonl').read_text().splitlines()]
    assert [v['iteration'] for v in validations] == [0, 1, 2]
    for row, validation in zip(rows, validations):  # vrl eval's schema, per seed
        assert validation['task'] == 'lift' and validation['episodes'] == 2
        assert [e['seed'] for e in validation['per_episode']] == [2000, 2001]
        assert validation['success_rate'] == row['val_success']
        assert validation['mean_episode_length'] == row['val_length']
        assert all(e['steps'] >= 1 and e['wall_s'] >= 0 for e in validation['per_episode'])
    assert set(rows[1]['ppo']) >= {'approx_kl', 'clip_fraction', 'value_loss'}
    assert [r['ppo']['actor_trained'] for r in rows[1:]] == [0.0, 1.0]  # critic warm-up
    config = json.loads((out / 'config.json').read_text())
    assert config['kind'] == 'residual' and config['task'] == 'lift'
    assert config['base_inference_steps'] == 4 and config['base_noise_scale'] == 1.0
    assert config['base_action_steps'] == TINY_BC['n_action_steps']
    assert 0 <= summary['best_val_success'] <= 1


def test_training_refuses_to_overwrite_and_resumes(residual_run):
    out, _ = residual_run
    settings = ResidualTrainSettings(task='lift', base=str(out.parent / 'bc'), envs=2,
                                     total_steps=120, rollout_steps=20, eval_every=1,
                                     val_episodes=2)
    with pytest.raises(ValueError, match='--resume'):
        train_residual(out, settings, progress=False, asynchronous=False)
    with pytest.raises(ValueError, match='other settings'):
        train_residual(out, replace(settings, reward='subtasks'), ppo=RUN_PPO,
                       resume=True, progress=False, asynchronous=False)
    config_path = out / 'config.json'  # as written before critic_warmup_updates existed
    config = json.loads(config_path.read_text())
    assert config['ppo'].pop('critic_warmup_updates') == 1
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match='other settings'):  # a missing key means the default
        train_residual(out, settings, ppo=RUN_PPO, resume=True, progress=False,
                       asynchronous=False)
    summary = train_residual(out, settings, ppo=replace(RUN_PPO, critic_warmup_updates=0),
                             resume=True, progress=False, asynchronous=False)
    assert summary['env_steps'] == 120 and summary['iterations'] == 3
    sessions = json.loads((out / 'config.json').read_text())['sessions']
    assert [s['from_env_step'] for s in sessions] == [0, 80]


def test_training_starts_from_another_runs_residual_over_its_base(residual_run, tmp_path):
    out, _ = residual_run
    start = ResidualAgent.from_checkpoint(out / 'residual')
    settings = ResidualTrainSettings(task='lift', base=str(out.parent / 'bc'), envs=2,
                                     total_steps=40, rollout_steps=20, eval_every=1,
                                     val_episodes=2, init_residual=str(out))
    ppo = replace(RUN_PPO, critic_warmup_updates=2)  # only the critic moves in this run

    def train(folder, settings=settings, residual_settings=None):
        return train_residual(tmp_path / folder, settings, residual_settings, ppo,
                              progress=False, asynchronous=False)

    with pytest.raises(ValueError, match='keeps its own'):
        train('a', residual_settings={'init_log_std': -2})
    with pytest.raises(ValueError, match='base_inference_steps 4 [(]here 8[)]'):
        train('b', replace(settings, base_inference_steps=8))
    with pytest.raises(ValueError, match='base_noise_scale 1.0 [(]here 0.0[)]'):
        train('b', replace(settings, base_noise_scale=0.0))
    older = make_residual_run(out.parent / 'bc', tmp_path / 'older')  # no noise or action steps
    summary = train('older_start', replace(settings, init_residual=str(older), total_steps=20))
    assert summary['init_residual'] == str(older)
    other_base = tmp_path / 'other_bc'
    shutil.copytree(out.parent / 'bc', other_base)
    stats_path = other_base / 'checkpoint' / 'normalization.json'
    stats = json.loads(stats_path.read_text())
    stats['action']['high'][0] += 0.01
    stats_path.write_text(json.dumps(stats))
    with pytest.raises(ValueError, match='another base'):
        train('c', replace(settings, base=str(other_base)))
    with pytest.raises(ValueError, match='not a residual run'):
        train('d', replace(settings, init_residual=str(out.parent / 'bc')))

    summary = train('e')
    kept = ResidualAgent.from_checkpoint(tmp_path / 'e' / 'residual_last')
    for name, tensor in start.actor.state_dict().items():
        assert torch.equal(kept.actor.state_dict()[name], tensor), name
    assert not all(torch.equal(kept.critic.state_dict()[k], v)
                   for k, v in start.critic.state_dict().items())
    assert summary['init_residual'] == str(out)
    assert summary['init_training'] == json.loads((out / 'summary.json').read_text())


def test_training_refuses_a_base_for_another_task(base_run, tmp_path):
    settings = ResidualTrainSettings(task='push', base=str(base_run), envs=1, total_steps=1)
    with pytest.raises(ValueError, match="trained on 'lift'"):
        train_residual(tmp_path / 'rl', settings, progress=False, asynchronous=False)


def test_residual_runner_samples_its_base_as_it_was_trained(base_run, tmp_path):
    run = make_residual_run(base_run, tmp_path / 'deterministic')
    config = json.loads((run / 'config.json').read_text())
    (run / 'config.json').write_text(json.dumps({**config, 'base_noise_scale': 0.0,
                                                 'base_action_steps': 2}))
    trained = open_policy(run, PolicyOptions(device='cpu'))
    assert trained.noise_scale == 0.0 and trained.action_steps == 2
    chosen = open_policy(run, PolicyOptions(device='cpu', noise_scale=0.5, action_steps=3))
    assert chosen.noise_scale == 0.5 and chosen.action_steps == 3
    old = open_policy(make_residual_run(base_run, tmp_path / 'old'), PolicyOptions(device='cpu'))
    assert old.noise_scale == 1.0 and old.action_steps == TINY_BC['n_action_steps']


def test_zero_residual_runner_acts_exactly_like_its_base(base_run, tmp_path):
    zero_run = make_residual_run(base_run, tmp_path / 'zero')
    residual = open_policy(zero_run, PolicyOptions(device='cpu', seed=5))
    base = BCPolicyRunner(zero_run, 'cpu', num_inference_steps=4, seed=5)
    assert isinstance(residual, ResidualPolicyRunner) and residual.num_inference_steps == 4
    state = np.linspace(-0.5, 0.5, base.config.state_dim).astype(np.float32)
    for _ in range(5):
        np.testing.assert_array_equal(residual.act_from_observation(state),
                                      base.act_from_observation(state))


def test_online_learner_pairs_rewards_with_actions_and_updates_between_episodes(
        base_run, tmp_path):
    run = make_residual_run(base_run, tmp_path / 'run', hidden_dims=(32,),
                            critic_hidden_dims=(32,))
    runner = open_policy(run, PolicyOptions(device='cpu'))
    learner = OnlineResidualLearner(runner, tmp_path / 'online', PPOConfig(epochs=3),
                                    min_steps=4)
    before = [p.clone() for p in runner.agent.actor.parameters()]
    rng = np.random.default_rng(0)
    states = rng.normal(size=(6, runner.config.state_dim)).astype(np.float32)
    for t, state in enumerate(states):
        # The reward of step t arrives with observation t + 1; the first has none to pay.
        learner.act(state, reward=None if t == 0 else float(t == 3), terminal=t == 3)
    assert learner.end_episode() is None  # 3 completed steps < min_steps; then success ended it
    rows = [json.loads(x) for x in (tmp_path / 'online' / 'transitions.jsonl').read_text()
            .splitlines()]
    assert [r['reward'] for r in rows] == [0.0, 0.0, 1.0] and rows[-1]['terminal']
    for t, state in enumerate(states[:3]):
        learner.act(state, reward=None if t == 0 else 0.0)
    stats = learner.end_episode()  # 3 + 2 steps (the open last one dropped) >= 4
    assert stats['update'] == 1 and stats['steps'] == 5 and stats['episodes'] == 2
    assert stats['returns'] == [1.0, 0.0]
    assert any(not torch.equal(a, b) for a, b in zip(before, runner.agent.actor.parameters()))
    saved = ResidualAgent.from_checkpoint(tmp_path / 'online' / 'residual')
    for a, b in zip(saved.actor.parameters(), runner.agent.actor.parameters()):
        torch.testing.assert_close(a, b)
    assert isinstance(open_policy(tmp_path / 'online', PolicyOptions(device='cpu')),
                      ResidualPolicyRunner)
    with pytest.raises(ValueError, match='already holds'):
        OnlineResidualLearner(runner, tmp_path / 'online')
    with pytest.raises(ValueError, match='residual run'):
        OnlineResidualLearner(BCPolicyRunner(base_run, 'cpu'), tmp_path / 'other')


def test_residual_checkpoint_round_trip_and_mismatch(tmp_path, residual_run):
    out, _ = residual_run
    agent = ResidualAgent.from_checkpoint(out / 'residual')
    with torch.no_grad():
        for p in agent.actor.parameters():
            p.add_(0.1)
    agent.save(tmp_path / 'agent')
    loaded = ResidualAgent.from_checkpoint(tmp_path / 'agent')
    x = torch.randn(4, agent.config.state_dim)
    b = torch.rand(4, agent.config.action_dim) * 2 - 1
    torch.testing.assert_close(loaded.actor(x, b), agent.actor(x, b))
    assert loaded.actor(x, b).abs().sum() > 0
    config = json.loads((tmp_path / 'agent' / 'config.json').read_text())
    config['config']['hidden_dims'] = [64]
    (tmp_path / 'agent' / 'config.json').write_text(json.dumps(config))
    with pytest.raises(ValueError, match='does not match'):
        ResidualAgent.from_checkpoint(tmp_path / 'agent')


def test_vrl_eval_runs_base_plus_residual(residual_run, tmp_path, capsys):
    out, _ = residual_run
    result_path = tmp_path / 'eval.json'
    assert main(['eval', '--task', 'lift', '--policy', str(out), '--episodes', '2',
                 '--seed-start', '1000', '--json', str(result_path), '--no-progress']) == 0
    result = json.loads(result_path.read_text())
    assert result['episodes'] == 2 and result['policy'] == str(out)
    assert result['inference_latency_ms']['chunks'] > 0


class _HoldStill:
    """A demonstrator that never moves, so every episode fails."""

    def reset(self) -> None:
        """Nothing to forget."""

    def act(self, sim) -> np.ndarray:
        """Hold the pose with the gripper open."""
        return np.array([0, 0, 0, 0, 0, 0, 1.0])


def test_collect_with_a_policy_can_keep_only_successes(tmp_path):
    out = collect('lift', 1, tmp_path / 'data', seed_start=7, views=('front',), width=16,
                  height=16, policy_factory=lambda sim: _HoldStill(), successes_only=True)
    entry = json.loads((out / 'index.json').read_text())['episodes'][0]
    assert entry['discarded'] and entry['bag'] is None and not entry['success']
    assert not (out / 'lift_seed0007').exists()


def test_distill_records_the_teacher_and_trains_an_image_student(tmp_path):
    from visual_rl_stack.residual_policy.diffusion_bc.training.config import DistillSettings
    from visual_rl_stack.residual_policy.diffusion_bc.training.distill import distill
    settings = DistillSettings(teacher='bc_state_lift', episodes=2, seed_start=0,
                               views=('front',), width=32, height=32, steps=3, batch_size=4,
                               device='cpu')
    report = distill(settings, tmp_path / 'student', overrides=TINY_BC, progress=False)
    assert report['task'] == 'lift' and report['episodes_kept'] >= 1
    index = json.loads((tmp_path / 'student' / 'data' / 'index.json').read_text())
    assert len(index['episodes']) == 2
    assert all((tmp_path / 'student' / 'data' / e['bag']).is_dir()
               for e in index['episodes'] if not e.get('discarded'))
    student = BCPolicyRunner(tmp_path / 'student', 'cpu')
    assert student.uses_images and student.views == ('front',)


def test_a_residual_run_ships_as_a_model(residual_run, tmp_path):
    from visual_rl_stack.core.shipped_models import add_model
    out, _ = residual_run
    model = add_model(out, 'resip_tiny', folder=tmp_path)
    assert model.card['kind'] == 'residual' and model.card['task'] == 'lift'
    assert model.card['training']['env_steps'] >= 80
    assert (model.path / 'residual' / 'model.safetensors').is_file()
    assert isinstance(open_policy(model.path, PolicyOptions(device='cpu')), ResidualPolicyRunner)


def test_vrl_train_residual_command_runs_worker_processes(base_run, tmp_path, capsys):
    out = tmp_path / 'cli_run'
    assert main(['train-residual', '--task', 'lift', '--base', str(base_run), '--out', str(out),
                 '--envs', '1', '--total-steps', '10', '--rollout-steps', '10',
                 '--val-episodes', '1', '--residual', 'hidden_dims=[16]',
                 '--ppo', 'epochs=1', '--no-progress']) == 0
    assert 'residual (ppo) on lift' in capsys.readouterr().out
    config = json.loads((out / 'config.json').read_text())
    assert config['residual']['hidden_dims'] == [16] and config['ppo']['epochs'] == 1


def test_rl_bench_reports_all_three_rates(base_run):
    from visual_rl_stack.residual_policy.resip.rl_bench import rl_throughput
    result = rl_throughput('lift', str(base_run), envs=1, iterations=1, rollout_steps=8,
                           raw_steps=8)
    assert result['raw_steps_per_s'] > 0 and result['resip']['env_steps'] == 8
    assert 0 < result['resip']['train_steps_per_s'] <= result['resip']['collect_steps_per_s']
    assert result['sb3']['steps_per_s'] > 0 and result['sb3']['env_steps'] == 8
