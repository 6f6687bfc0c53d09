"""Diffusion behaviour cloning and residual PPO (ResiP); built in a later issue."""
