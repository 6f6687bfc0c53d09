"""What a diffusion policy can observe (a module of its own so settings need no torch)."""

OBS_MODES = ('state', 'image', 'state+image')
