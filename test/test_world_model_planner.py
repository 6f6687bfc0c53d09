"""The embedded stage planner: every task's instruction, paraphrases, and clear refusals."""

import pytest
from visual_rl_stack.sim.config import SimConfig, TASK_NAMES
from visual_rl_stack.sim.scene import TabletopSim
from visual_rl_stack.world_model.planning.instruction_parser import parse_instruction
from visual_rl_stack.world_model.planning.plan import (Goal, goals_from_stages, Plan, PlanError,
                                                       validate)

MOVE_GREEN = (Goal('move', 'green cube', 'red cube'),)
TOWER = MOVE_GREEN + (Goal('move', 'blue cube', 'green cube'),)
PLACE = (Goal('move', 'green cube', 'blue target'),)
#: Each task's own instruction plans to these goals.
TASK_GOALS = {
    'reach': (Goal('reach', 'green ball'),),
    'lift': (Goal('lift', 'red cube'),),
    'push': (Goal('push', 'blue cube', 'yellow target'),),
    'pick_place': PLACE,
    'stack': MOVE_GREEN,
    'stack3': TOWER,
    'peg_insert': (Goal('insert', 'red peg', 'yellow hole'),),
}
#: Paraphrases (other words, other order) and the task whose scene grounds them.
PARAPHRASES = [
    ('pick_place', 'place the green block onto the blue goal', PLACE),
    ('pick_place', 'on the blue target, put the green cube', PLACE),
    ('pick_place', 'grab the green cube and drop it on the blue marker', PLACE),
    ('pick_place', 'Please carry the green box to the blue target.', PLACE),
    ('pick_place', 'the green cube goes on the blue pad', PLACE),
    ('pick_place', 'take the cube and set it down on the target', PLACE),
    ('stack', 'put the green cube on top of the red cube', MOVE_GREEN),
    ('stack', 'stack the green block on the red one', MOVE_GREEN),
    ('stack', 'pick up the green cube, then place it on the red cube', MOVE_GREEN),
    ('stack', 'onto the red block, stack the green block', MOVE_GREEN),
    ('stack3', 'stack the green block on the red one, then the blue on the green', TOWER),
    ('stack3', 'first put the green cube on the red cube and then the blue cube on the green '
               'cube', TOWER),
    ('stack3', 'after placing the green cube on the red cube, put the blue cube on the green '
               'cube', TOWER),
    ('stack3', 'put the blue cube on the green cube after the green cube on the red cube', TOWER),
    ('stack3', 'before stacking the blue cube on the green cube, stack the green cube on the '
               'red cube', TOWER),
    ('lift', 'lift the red block', (Goal('lift', 'red cube'),)),
    ('lift', 'grab the cube and raise it', (Goal('lift', 'red cube'),)),
    ('lift', 'pick up the red box', (Goal('lift', 'red cube'),)),
    ('push', 'slide the blue box to the yellow circle', (Goal('push', 'blue cube',
                                                              'yellow target'),)),
    ('push', 'shove the block onto the yellow spot', (Goal('push', 'blue cube',
                                                           'yellow target'),)),
    ('peg_insert', 'put the red peg in the socket', (Goal('insert', 'red peg', 'yellow hole'),)),
    ('peg_insert', 'into the square hole, insert the peg', (Goal('insert', 'red peg',
                                                                 'yellow hole'),)),
    ('peg_insert', 'grasp the red pin and plug it into the hole',
     (Goal('insert', 'red peg', 'yellow hole'),)),
    ('reach', 'touch the green sphere', (Goal('reach', 'green ball'),)),
    ('reach', 'bring the gripper to the green ball', (Goal('reach', 'green ball'),)),
    ('reach', 'go to the ball', (Goal('reach', 'green ball'),)),
]


@pytest.fixture(scope='module')
def scenes():
    """Return every task's instruction and named scene objects (seed 0)."""
    found = {}
    for task in TASK_NAMES:
        sim = TabletopSim(SimConfig(task=task, cameras=()))
        sim.reset(seed=0)
        found[task] = (sim.instruction, sim.task.scene_objects())
        sim.close()
    return found


@pytest.mark.parametrize('task', TASK_NAMES)
def test_every_task_instruction_plans_to_its_goals(scenes, task):
    instruction, objects = scenes[task]
    assert parse_instruction(instruction, objects).goals == TASK_GOALS[task]


def test_at_least_twenty_paraphrases_are_planned_right(scenes):
    assert len(PARAPHRASES) >= 20
    wrong = {text: [g.describe() for g in parse_instruction(text, scenes[task][1]).goals]
             for task, text, goals in PARAPHRASES
             if parse_instruction(text, scenes[task][1]).goals != goals}
    assert not wrong


def test_without_a_scene_objects_get_canonical_names():
    plan = parse_instruction('Stack the green block on the red box, then the blue cube on the '
                             'green cube')
    assert plan.goals == TOWER
    assert [s.name for s in plan.stages[:6]] == [
        'reach green cube', 'grasp green cube', 'lift green cube',
        'move_above green cube over red cube', 'place green cube on red cube',
        'release green cube']
    assert [s.index for s in plan.stages] == list(range(1, 13))
    assert plan.to_dict()['stages'][10]['name'] == 'place blue cube on green cube'


#: Instructions that refer back with "one" (or a bare colour), each with its explicit twin.
REFERRING_BACK = [
    ('stack the green block on the red one', 'stack the green cube on the red cube'),
    ('put the green cube on top of the red one', 'put the green cube on the red cube'),
    ('pick up the green cube and put it on the red one',
     'pick up the green cube and put it on the red cube'),
    ('stack the green block on the red one, then the blue on the green',
     'stack the green cube on the red cube, then the blue cube on the green cube'),
    ('first the green cube on the red one, then the blue one on the green one',
     'first the green cube on the red cube, then the blue cube on the green cube'),
    ('push the blue block onto the yellow circle, then the red one onto the green one',
     'push the blue cube onto the yellow circle, then the red cube onto the green circle'),
    ('put the red peg into the yellow hole, then the blue one into the green one',
     'put the red peg into the yellow hole, then the blue peg into the green hole'),
]


@pytest.mark.parametrize('text, explicit', REFERRING_BACK)
def test_one_without_a_scene_is_the_kind_named_before_it(text, explicit):
    assert parse_instruction(text).goals == parse_instruction(explicit).goals


def test_every_paraphrase_referring_back_plans_the_same_without_the_scene(scenes):
    referring = [(task, text, goals) for task, text, goals in PARAPHRASES
                 if ' one' in text or 'the blue on' in text]
    assert referring
    for task, text, goals in referring:
        assert parse_instruction(text).goals == goals, text


def test_one_with_nothing_named_before_it_is_refused_saying_so():
    with pytest.raises(PlanError, match="'green one' names no kind of object, nothing before"):
        parse_instruction('pick up the green one')


@pytest.mark.parametrize('task, text, says', [
    ('stack', 'make me a sandwich', 'no action on an object'),
    ('stack', 'put the red cube next to the green cube', "'next to' is not supported"),
    ('stack', 'pick up the cube', 'could be any of red cube, green cube'),
    ('stack', 'put the purple cube on the red cube', 'the object'),
    ('pick_place', 'put the green cube on the red cube', "destination 'red cube' is not in "
                                                         'the scene (it has: green cube, blue '
                                                         'target)'),
    ('reach', 'pick up the green ball', 'a ball cannot be picked up'),
    ('pick_place', 'put it on the blue target', 'no object to act on'),
    ('push', 'push the blue block', 'where? no destination'),
])
def test_instructions_that_cannot_be_grounded_are_refused_saying_why(scenes, task, text, says):
    with pytest.raises(PlanError) as error:
        parse_instruction(text, scenes[task][1])
    message = str(error.value)
    assert says in message and 'Understood:' in message


def test_the_refusal_says_what_was_understood(scenes):
    with pytest.raises(PlanError, match=r'Understood: move green cube onto red cube\.'):
        parse_instruction('stack the green cube on the red cube, then the blue cube on the '
                          'yellow cube', scenes['stack3'][1])


def test_stages_regroup_into_goals_and_bad_orders_are_refused():
    plan = parse_instruction('stack the green cube on the red cube, then the blue cube on the '
                             'green cube')
    stages = plan.to_dict()['stages']
    assert goals_from_stages(stages) == plan.goals
    with pytest.raises(PlanError, match='no goal'):
        goals_from_stages([stages[0], stages[2]])
    mixed = [dict(s) for s in stages[:6]]
    mixed[3]['object'] = 'blue cube'
    with pytest.raises(PlanError):
        goals_from_stages(mixed)


def test_validation_refuses_wrong_roles(scenes):
    objects = scenes['peg_insert'][1]
    with pytest.raises(PlanError, match='no destination for move'):
        validate(Plan('x', (Goal('move', 'red peg', 'yellow hole'),), 'test'), objects)
    with pytest.raises(PlanError, match='on itself'):
        validate(Plan('x', (Goal('move', 'red peg', 'red peg'),), 'test'), objects)
    with pytest.raises(PlanError, match='no goals'):
        validate(Plan('x', (), 'test'), objects)


def test_vrl_stages_writes_the_numbered_stages_and_refuses_with_exit_code_2(tmp_path):
    import json
    import subprocess
    import sys
    out = tmp_path / 'stages.json'
    command = [sys.executable, '-m', 'visual_rl_stack.cli', 'stages', '--task', 'stack3']
    done = subprocess.run(command + ['--instruction', 'stack the green block on the red one, '
                                     'then the blue on the green', '--json', str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert '12. release blue cube' in done.stdout
    report = json.loads(out.read_text())
    assert len(report['stages']) == 12
    assert report['scene_objects'] == ['red cube', 'green cube', 'blue cube']
    refused = subprocess.run(command + ['--instruction', 'put the yellow cube on the red cube'],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "'yellow cube' is not in the scene" in refused.stderr
