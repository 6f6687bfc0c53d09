"""ResiP: a residual policy trained with PPO on top of a frozen diffusion BC base."""
