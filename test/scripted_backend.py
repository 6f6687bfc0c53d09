"""A keypoint backend for tests that answers like a pointing model, from the prompt alone."""

from dataclasses import replace
import json

from visual_rl_stack.sim.config import default_cameras, SimConfig
from visual_rl_stack.sim.scene import TabletopSim
from visual_rl_stack.vlm_affordance.affordance import Affordance, Prompt
from visual_rl_stack.vlm_affordance.replies import parse_moka_json


class ScriptedBackend:
    """Names the first candidate as the grasp and the middle grid tile as the target."""

    name = 'scripted'

    def __init__(self, path=None, target='c3'):
        """Remember the target tile; ``path`` is ignored (nothing to load)."""
        self.target = target
        self.calls = 0

    def ask(self, prompt: Prompt, attempt: int) -> str:
        """Return a MOKA JSON reply pointing at candidate 1 and the target tile."""
        self.calls += 1
        return json.dumps({'grasp': 1 if prompt.candidates else 'c3', 'target': self.target})

    def parse(self, reply: str, prompt: Prompt) -> Affordance:
        """Parse the reply as MOKA JSON."""
        return parse_moka_json(reply, prompt, self.name)


def render_start(views, task='lift', seed=0, size=64):
    """Return the views (``size`` pixels square), TCP position and instruction at a start."""
    specs = {s.name: replace(s, width=size, height=size) for s in default_cameras()}
    sim = TabletopSim(SimConfig(task=task, cameras=tuple(specs[v] for v in views)))
    try:
        sim.reset(seed=seed)
        return sim.render(), sim.robot_state().ee_position.copy(), sim.instruction
    finally:
        sim.close()
