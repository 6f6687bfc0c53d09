"""Diffusion behaviour-cloning base policy for ResiP; residual PPO on top comes later."""
