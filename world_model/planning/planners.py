"""
Planner backends behind one call: ``planner(instruction, scene_objects) -> Plan``.

``rules`` is the embedded default (:mod:`.instruction_parser`, no weights);
``causal-lm`` asks a transformers causal language model in a local folder
(:mod:`.llm_planner`). Both refuse, with a :class:`.plan.PlanError`, what they
cannot ground in the scene.
"""

from typing import Callable, Optional, Sequence

from visual_rl_stack.sim.scene_objects import SceneObject

from .instruction_parser import parse_instruction
from .plan import Plan

PLANNERS = ('rules', 'causal-lm')
Planner = Callable[[str, Optional[Sequence[SceneObject]]], Plan]


def open_planner(name: str = 'rules', model: Optional[str] = None, **options) -> Planner:
    """Return the planner ``name``; ``causal-lm`` needs ``model``, a local model folder."""
    if name == 'rules':
        if model:
            raise ValueError('the rules planner has no weights; drop --planner-model')
        return parse_instruction
    if name == 'causal-lm':
        if not model:
            raise ValueError('the causal-lm planner needs a local model folder (--planner-model)')
        from .llm_planner import CausalLMPlanner
        return CausalLMPlanner(model, **options)
    raise ValueError(f'unknown planner {name!r}; known: {", ".join(PLANNERS)}')
