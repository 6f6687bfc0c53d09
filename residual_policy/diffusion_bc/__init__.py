"""Diffusion behaviour cloning: the model, its training and distillation, the runner."""
