"""Training a diffusion policy from demonstration bags, and distilling a teacher into it."""
