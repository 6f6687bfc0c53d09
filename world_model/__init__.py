"""
Multi-view world model (RoboHorizon): Recognize, Sense, Plan, Act.

``planning`` turns an instruction into numbered stages and a staged dense
reward (Recognize); ``keyframes`` finds the key frames of recorded episodes
(Sense).
"""
