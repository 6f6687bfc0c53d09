"""The ResiP method: diffusion BC, the residual PPO on top, the policy node and safety filter."""
