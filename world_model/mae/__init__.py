"""
Sense: a multi-view masked autoencoder over the camera views (RoboHorizon, MV-MWM).

Every view is cut into patch tokens by a convolutional stem; all views but one
are hidden completely and most patches of the last one too, the same mask held
over a key-horizon's frames (:mod:`.masking`); a ViT encoder reads the visible
tokens and a decoder reconstructs every view's pixels and predicts the staged
reward (:mod:`.model`).
"""
