"""
The world-model agent as it acts: filter each observation into an RSSM state, then act.

A horizon run folder (``vrl train-horizon``) holds all it needs::

    RUN2/config.json    kind 'world_model', task, views, image size, settings
    RUN2/mae/           the frozen multi-view MAE (copied from the world model)
    RUN2/rssm/          the dynamics, fine-tuned on the agent's own episodes
    RUN2/checkpoint/    the actor and critic

:class:`HorizonAgent` keeps one RSSM state per copy of the environment;
:class:`HorizonPolicy` is the ``world_model`` policy kind, so ``vrl eval``,
the policy node and replay evaluation run it as any other policy.
"""

import json
from pathlib import Path
import time
from typing import Optional, Union

import numpy as np
import torch
from visual_rl_stack.core.checkpoints import load_checkpoint, save_checkpoint
from visual_rl_stack.core.devices import resolve_device
from visual_rl_stack.core.policy import PolicyOptions
from visual_rl_stack.core.run_layout import CHECKPOINT, RUN_CONFIG, WORLD_MODEL_KIND
from visual_rl_stack.sim.gym_env import delta_scale, delta_to_physical

from .actor_critic import AgentNets, BehaviorConfig
from ..dynamics.sequences import proprioception
from ..run_folder import load_world_model, WorldModel

AGENT_KIND = 'world_model_agent'
POLICY_KIND = WORLD_MODEL_KIND


def save_agent(path: Path, nets: AgentNets) -> None:
    """Write the actor and critic as a checkpoint folder."""
    save_checkpoint(path, nets, nets.config.to_dict(), {}, AGENT_KIND)


def load_agent(path: Path) -> AgentNets:
    """Load :func:`save_agent`'s checkpoint; a mismatching one raises ValueError."""
    return load_checkpoint(path, lambda config, _: AgentNets(BehaviorConfig(**config)),
                           AGENT_KIND).eval()


class HorizonAgent:
    """Acts for N copies of the task at once from their camera frames and states."""

    def __init__(self, world: WorldModel, nets: AgentNets, copies: int = 1):
        """Start every copy at the RSSM's initial state."""
        self.world, self.nets = world, nets
        self.state = world.rssm.initial(copies)
        self.device = self.state.deter.device
        self.prev_action = torch.zeros(copies, nets.config.action_size, device=self.device)
        self.last_embeds = np.zeros((copies, world.embedder.size), np.float32)

    def restart(self, copies: np.ndarray) -> None:
        """Forget the episodes of the copies where ``copies`` is True (they start anew)."""
        keep = torch.from_numpy(~np.asarray(copies, dtype=bool)).float()[:, None].to(self.device)
        fresh = self.world.rssm.initial(len(keep))
        self.state = type(self.state)(*(k * keep + f * (1 - keep)
                                        for k, f in zip(self.state, fresh)))
        self.prev_action = self.prev_action * keep

    @torch.no_grad()
    def act(self, images: np.ndarray, states: np.ndarray, explore: bool) -> np.ndarray:
        """Update every copy's state with its observation; return ``N x 7`` actions in [-1, 1]."""
        #: The raw embeddings of the latest observations (what a replay buffer stores).
        self.last_embeds = self.world.embedder(images, proprioception(states))
        embeds = torch.from_numpy(self.world.normalizer(self.last_embeds)).to(self.device)
        self.state, _ = self.world.rssm.obs_step(self.state, self.prev_action, embeds,
                                                 sample=explore)
        actor = self.nets.actor
        action = (actor.sample(self.state.features)[0] if explore
                  else actor.mode(self.state.features))
        self.prev_action = action
        return action.cpu().numpy().astype(np.float32)


class HorizonPolicy:
    """A horizon run as a :class:`visual_rl_stack.core.policy.Policy` (kind ``world_model``)."""

    kind = POLICY_KIND

    def __init__(self, run: Union[str, Path], options: PolicyOptions = PolicyOptions()):
        """Open the run folder (module doc); ValueError naming what is missing."""
        run = Path(run)
        config_path = run / RUN_CONFIG
        if not config_path.is_file():
            raise ValueError(f'{run} is not a world-model agent run (no {RUN_CONFIG})')
        self.config = json.loads(config_path.read_text())
        self.checkpoint = run / CHECKPOINT
        self.device = resolve_device(options.device)
        world, nets = load_world_model(run), load_agent(self.checkpoint)
        world.embedder.mae.to(self.device)
        world.rssm.to(self.device)
        self.agent = HorizonAgent(world, nets.to(self.device))
        self.scale = delta_scale()
        self.latencies_s: list[float] = []
        self.seed = options.seed
        self.reseed(options.seed)

    @property
    def uses_images(self) -> bool:
        """Return True: the agent sees the world through its camera views."""
        return True

    @property
    def views(self) -> tuple[str, ...]:
        """Return the views the MAE reads, in order."""
        return self.agent.world.embedder.views

    @property
    def image_size(self) -> tuple[int, int]:
        """Return the square view size."""
        size = self.agent.world.embedder.image_size
        return size, size

    @property
    def task(self) -> Optional[str]:
        """Return the task the agent was trained on."""
        return self.config.get('task')

    @property
    def action_mode(self) -> Optional[str]:
        """Return 'delta': the agent commands end-effector steps."""
        return 'delta'

    @property
    def action_dim(self) -> int:
        """Return the size of one action."""
        return self.agent.nets.config.action_size

    @property
    def state_labels(self) -> Optional[list[tuple[str, int]]]:
        """Return None: only the state's proprioceptive head is read, whatever follows it."""
        return None

    def check_compatible(self, task: str, action_mode: str) -> None:
        """Raise ValueError for another task or action mode than the agent's."""
        if self.task is not None and self.task != task:
            raise ValueError(f'agent {self.checkpoint.parent} was trained on task '
                             f'{self.task!r}, not {task!r}')
        if action_mode != 'delta':
            raise ValueError(f'the world-model agent outputs delta actions, but the simulator '
                             f'expects {action_mode!r} actions')

    def reseed(self, seed: int) -> None:
        """Seed torch: the posterior and actions are deterministic, this fixes the rest."""
        torch.manual_seed(seed)

    def reset(self) -> None:
        """Start a new episode from the RSSM's initial state."""
        self.agent.restart(np.ones(1, dtype=bool))

    def act_from_observation(self, state: np.ndarray,
                             images: Optional[dict[str, np.ndarray]] = None) -> np.ndarray:
        """Return the physical delta action for this step (deterministic actor)."""
        missing = [v for v in self.views if images is None or v not in images]
        if missing:
            raise ValueError(f'the world-model agent needs the views {list(self.views)}; '
                             f'missing {missing}')
        start = time.perf_counter()
        frames = np.stack([images[v] for v in self.views])[None]
        action = self.agent.act(frames, np.asarray(state, np.float32)[None], explore=False)[0]
        self.latencies_s.append(time.perf_counter() - start)
        return delta_to_physical(action, self.scale)

    def report(self) -> dict:
        """Return the evaluation record: per-step latency and device."""
        ms = np.asarray(self.latencies_s) * 1e3
        latency = ({'median': float(np.median(ms)), 'p99': float(np.percentile(ms, 99)),
                    'steps': len(ms)} if len(ms) else {'median': None, 'p99': None, 'steps': 0})
        return {'inference_latency_ms': latency, 'device': str(self.device)}


def open_horizon_policy(run: Path, options: PolicyOptions) -> HorizonPolicy:
    """Open a horizon run folder: the ``world_model`` policy kind."""
    return HorizonPolicy(run, options)
