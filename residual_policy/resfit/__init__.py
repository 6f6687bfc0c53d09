"""ResFiT: an off-policy (TD3-style) residual over a frozen diffusion BC base."""
