"""docs/interfaces.md lists every parameter each node declares, under that node."""

from pathlib import Path

import pytest
from visual_rl_stack.data.player_node import PARAMS as PLAYER_PARAMS
from visual_rl_stack.data.recorder_node import PARAMS as RECORDER_PARAMS
from visual_rl_stack.perception.camera_node import PARAMS as CAMERA_PARAMS
from visual_rl_stack.residual_policy.policy_node import PARAMS as POLICY_PARAMS
from visual_rl_stack.sim.sim_node import PARAMS as SIM_PARAMS
from visual_rl_stack.vlm_affordance.affordance_node import PARAMS as AFFORDANCE_PARAMS
from visual_rl_stack.world_model.world_model_node import PARAMS as WORLD_MODEL_PARAMS

DOC = Path(__file__).resolve().parent.parent / 'docs' / 'interfaces.md'


def _section(node: str) -> str:
    text = DOC.read_text()
    start = text.index(f'### `{node}` parameters')
    end = text.find('\n## ', start)
    return text[start:] if end < 0 else text[start:end]


@pytest.mark.parametrize('node, specs', [('sim_node', SIM_PARAMS),
                                         ('camera_node', CAMERA_PARAMS),
                                         ('recorder', RECORDER_PARAMS),
                                         ('player', PLAYER_PARAMS),
                                         ('policy_node', POLICY_PARAMS),
                                         ('affordance_node', AFFORDANCE_PARAMS),
                                         ('world_model_node', WORLD_MODEL_PARAMS)])
def test_every_parameter_is_documented(node, specs):
    section = _section(node)
    missing = [name for name in specs if f'| `{name}` |' not in section]
    assert not missing, f'{node} parameters missing from docs/interfaces.md: {missing}'
