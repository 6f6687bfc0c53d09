"""Multi-view world model (RoboHorizon); built in a later issue."""
