"""The shared base: run layout, records, checkpoints, devices, observations, policy registry."""
