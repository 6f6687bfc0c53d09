"""PyBullet Franka Panda tabletop: tasks, cameras, experts, gymnasium env, sim node."""

from .gym_env import register_envs

register_envs()
