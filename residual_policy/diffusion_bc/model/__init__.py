"""The diffusion policy: encoders, 1-D U-Net, normalisation, state features, action frames."""
