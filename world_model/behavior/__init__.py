"""
Act: an actor-critic learned inside the world model (RoboHorizon's Plan and Act).

:mod:`.returns` computes lambda-returns; :mod:`.actor_critic` imagines
trajectories with the RSSM's prior and trains the actor through them (returns,
entropy, a behaviour-cloning term on the demonstrations) and the critic on
the returns; :mod:`.env` and :mod:`.train_horizon` alternate real rollouts
with training; :mod:`.policy` runs the trained agent as a policy kind.
"""
