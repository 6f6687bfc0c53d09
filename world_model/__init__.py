"""
Multi-view world model (RoboHorizon): Recognize, Sense, Plan, Act.

``planning`` turns an instruction into numbered stages and a staged dense
reward (Recognize); ``keyframes`` and ``mae`` find the key frames of
recorded episodes and learn multi-view features (Sense); ``dynamics`` is the
RSSM over those features (Plan); ``behavior`` trains an actor-critic in its
imagination and runs it as a policy (Act); ``monitor`` and
``world_model_node`` report the plan's stage, progress and keyframes live.
"""
