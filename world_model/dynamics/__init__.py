"""
Plan: latent dynamics on the frozen MAE's features (RoboHorizon's RSSM).

:mod:`.rssm` is the recurrent state-space model (a deterministic GRU path,
a Gaussian stochastic state, posterior and prior, heads for the embedding,
the reward and episode continuation, KL balancing); :mod:`.sequences` turns
demonstration bags and online episodes into the embedding, action, reward
sequences it learns from; :mod:`.training` fits it.
"""
