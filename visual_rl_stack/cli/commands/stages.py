r"""
``vrl stages``: the numbered stages a planner makes of an instruction.

Example::

    vrl stages --instruction "stack the green block on the red one, then the blue on the green" \
        --task stack3 --json runs/stages.json

With ``--task`` the words are grounded in that task's scene objects (a
colour alone is then enough, and an object the scene lacks is refused);
without it, objects are named "<colour> <kind>". ``--planner causal-lm``
asks a transformers causal LM in ``--planner-model`` instead of the
embedded rules. An instruction that cannot be grounded exits with code 2 and
says what was understood.
"""

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``vrl stages`` arguments to ``parser``."""
    parser.add_argument('--instruction', required=True, help='the instruction to plan')
    parser.add_argument('--task', help="ground the objects in this task's scene")
    parser.add_argument('--planner', default='rules', choices=('rules', 'causal-lm'),
                        help='who writes the stages (default: the embedded rules)')
    parser.add_argument('--planner-model', help='local model folder of the causal-lm planner')
    parser.add_argument('--json', type=Path, help='JSON file to write the plan to')


def main(args: argparse.Namespace) -> int:
    """Plan the instruction, print the stages, write the JSON."""
    import json

    from visual_rl_stack.world_model.planning.planners import open_planner
    scene = None
    if args.task:
        from visual_rl_stack.sim.config import SimConfig
        from visual_rl_stack.sim.scene import TabletopSim
        sim = TabletopSim(SimConfig(task=args.task, cameras=()))
        try:
            sim.reset(seed=0)
            scene = sim.task.scene_objects()
        finally:
            sim.close()
    plan = open_planner(args.planner, args.planner_model)(args.instruction, scene)
    report = plan.to_dict() | {'task': args.task,
                               'scene_objects': [o.name for o in scene or ()]}
    for goal in plan.goals:
        print(f'goal: {goal.describe()}')
    for stage in plan.stages:
        print(f'  {stage.index:2d}. {stage.name}')
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + '\n')
        print(f'wrote {args.json}')
    return 0
