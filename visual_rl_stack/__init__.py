"""visual_rl_stack: shared helpers (messages, configuration, devices, bags) and the vrl CLI."""
