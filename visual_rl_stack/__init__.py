"""visual_rl_stack: the shared base (core, data, ros, evaluation, bench) and the vrl CLI."""
