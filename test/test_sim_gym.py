"""Tests of the gymnasium environment, its registration and the vector env."""

import gymnasium as gym
from gymnasium.utils.env_checker import check_env
import numpy as np
import pytest
from visual_rl_stack.sim.config import SimConfig, TASK_NAMES
from visual_rl_stack.sim.experts import make_expert
from visual_rl_stack.sim.gym_env import ENV_IDS, VisualRLEnv
from visual_rl_stack.sim.vector_env import make_vector_env


@pytest.mark.parametrize('task', TASK_NAMES)
def test_check_env_state(task):
    env = VisualRLEnv(task, 'state')
    try:
        check_env(env, skip_render_check=True)
    finally:
        env.close()


@pytest.mark.parametrize('task, obs_mode', [('lift', 'image'), ('peg_insert', 'state+image')])
def test_check_env_images(task, obs_mode):
    env = gym.make(ENV_IDS[task], obs_mode=obs_mode, render_mode='rgb_array')
    try:
        check_env(env.unwrapped)
        env.reset(seed=0)
        assert env.render().shape == (128, 128, 3)
    finally:
        env.close()


def test_ids_registered():
    assert ENV_IDS['peg_insert'] == 'VisualRL/PegInsert-v0'
    for env_id in ENV_IDS.values():
        assert env_id in gym.registry


def test_expert_actions_drive_env_to_success():
    env = VisualRLEnv('reach', 'state')
    try:
        env.reset(seed=0)
        expert = make_expert('reach')
        for _ in range(50):
            action = env.normalize_action(expert.act(env.sim))
            _, reward, terminated, truncated, info = env.step(action)
            if terminated:
                break
        assert terminated and reward == 1.0 and info['success']
    finally:
        env.close()


def test_depth_observation_optional():
    env = VisualRLEnv('lift', 'image', SimConfig(), depth=True)
    try:
        obs, _ = env.reset(seed=0)
        assert obs['front_depth'].dtype == np.float32 and 'wrist' in obs
    finally:
        env.close()


def test_truncates_at_max_episode_steps():
    env = VisualRLEnv('lift', 'state', SimConfig(max_episode_steps=3))
    try:
        env.reset(seed=0)
        flags = [env.step(np.zeros(7, dtype=np.float32))[3] for _ in range(3)]
        assert flags == [False, False, True]
    finally:
        env.close()


def test_vector_env_steps_two_workers():
    envs = make_vector_env('reach', num_envs=2, seed=0)
    try:
        obs, _ = envs.reset(seed=0)
        assert obs.shape[0] == 2 and not np.allclose(obs[0], obs[1])
        obs, rewards, terminated, truncated, _ = envs.step(envs.action_space.sample())
        assert obs.shape == (2, envs.single_observation_space.shape[0])
        assert rewards.shape == (2,)
    finally:
        envs.close()
