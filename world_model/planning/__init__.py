"""
Recognize: an instruction becomes goals, goals become stages, stages a staged reward.

The embedded planner (:mod:`.instruction_parser`) needs no weights; a
transformers causal LM (:mod:`.llm_planner`) can propose the stages instead.
Both give a :class:`.plan.Plan`, judged on named scene objects
(:mod:`visual_rl_stack.sim.scene_objects`) by :mod:`.staged_reward`.
"""
