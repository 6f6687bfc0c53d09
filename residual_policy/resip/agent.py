"""
Base + residual as one policy: the trained residual, its checkpoint and its runner.

A residual run folder (``vrl train-residual``) is a BC run folder plus a
residual::

    RUN2/config.json     run config: task, action mode, state layout (copied
                         from the base run), base source, residual settings
    RUN2/checkpoint/     a copy of the frozen base's checkpoint
    RUN2/residual/       the best residual (actor and critic) so far

so everything that opens a BC run (``vrl eval``, the policy node, ``vrl
models``) opens a residual run too; :func:`open_policy_runner` picks the
runner. The residual's units are the base's: states and actions min-max
normalised with the base's statistics (:class:`NormalisedSpace`); for a base
with an action frame, actions are seen in that frame at the current state,
the frame its action statistics were fitted in.
"""

from pathlib import Path
from typing import NamedTuple, Optional, Union

import numpy as np
import torch
from torch import nn
from visual_rl_stack.core.checkpoints import load_checkpoint, save_checkpoint
from visual_rl_stack.core.policy import PolicyOptions
from visual_rl_stack.core.policy import resolve_run
from visual_rl_stack.core.run_layout import PathLike, RESIDUAL, RESIDUAL_KIND
from visual_rl_stack.residual_policy.diffusion_bc.model.diffusion_policy import DiffusionPolicy
from visual_rl_stack.residual_policy.diffusion_bc.runner import BCPolicyRunner

from .actor_critic import Critic, ResidualActor
from .config import ResidualConfig

CHECKPOINT_KIND = 'resip_residual'


class ResidualAgent(nn.Module):
    """The residual actor and its critic, saved and loaded together."""

    def __init__(self, config: ResidualConfig):
        super().__init__()
        self.config = config
        self.actor = ResidualActor(config)
        self.critic = Critic(config)

    def save(self, path: PathLike) -> None:
        """Write the agent as a checkpoint folder (atomically)."""
        save_checkpoint(path, self, self.config.to_dict(), {}, CHECKPOINT_KIND)

    @classmethod
    def from_checkpoint(cls, path: PathLike,
                        device: Union[str, torch.device] = 'cpu') -> 'ResidualAgent':
        """Load an agent saved by :meth:`save`; a mismatching checkpoint raises ValueError."""
        agent = load_checkpoint(path, lambda config, _: cls(ResidualConfig.from_dict(config)),
                                CHECKPOINT_KIND, device)
        return agent.eval()


class NormalisedSpace:
    """
    Map raw states and actions to the base policy's normalised units and back.

    A base with an action frame fitted its action statistics on actions seen
    in that frame, so world actions are turned into the frame at the state
    they are taken in before normalising (and back after): world actions
    normalised with frame ranges would leave [-1, 1] and be clamped.
    """

    def __init__(self, policy: DiffusionPolicy):
        self.device = policy.device
        self.policy = policy
        self.action = policy.normalizers['action']

    def state_norm(self, states: np.ndarray) -> torch.Tensor:
        """Return normalised states as a float32 tensor."""
        return self.policy.normalize_state(np.asarray(states, np.float32))

    def action_norm(self, actions: np.ndarray, states: np.ndarray) -> torch.Tensor:
        """Return raw world ``actions (N, A)`` taken at raw ``states (N, S)``, normalised."""
        actions = torch.as_tensor(np.asarray(actions, np.float32), device=self.device)
        frame = self.policy.action_frame
        if frame is not None:
            actions = frame.to_frame(actions, self._heading(states))
        return self.action.normalize(actions)

    def action_raw(self, actions_norm: torch.Tensor, states: np.ndarray) -> np.ndarray:
        """Return raw float64 world actions for normalised ones taken at raw ``states``."""
        actions = self.action.denormalize(actions_norm)
        frame = self.policy.action_frame
        if frame is not None:
            actions = frame.to_world(actions, self._heading(states))
        return actions.double().cpu().numpy()

    def _heading(self, states: np.ndarray) -> torch.Tensor:
        """Return the action frame's heading ``(N,)`` at raw ``states (N, S)``."""
        return self.policy.action_frame.heading(
            torch.as_tensor(np.asarray(states, np.float32), device=self.device))


def residual_config_for(policy: DiffusionPolicy, **settings) -> ResidualConfig:
    """Return a :class:`ResidualConfig` sized for ``policy``; unknown settings are refused."""
    return ResidualConfig.from_dict({'state_dim': policy.state_features.output_dim,
                                     'action_dim': policy.config.action_dim, **settings})


class ResidualStep(NamedTuple):
    """One control step of base + residual, in normalised units (a PPO transition's inputs)."""

    state: torch.Tensor
    base_action: torch.Tensor
    residual: torch.Tensor
    log_prob: torch.Tensor
    value: torch.Tensor


class ResidualPolicyRunner(BCPolicyRunner):
    """
    A :class:`BCPolicyRunner` whose actions the residual corrects at every step.

    The residual acts deterministically (its mean). Without an explicit
    ``num_inference_steps`` the base samples with the DDIM step count the
    residual was trained against.
    """

    def __init__(self, run: PathLike, device: str = 'auto',
                 num_inference_steps: Optional[int] = None, seed: int = 0,
                 action_steps: Optional[int] = None,
                 warm_start: Optional[float] = None,
                 noise_scale: Optional[float] = None) -> None:
        """Load the base (``RUN2/checkpoint``) and the residual (``RUN2/residual``)."""
        checkpoint, run_config = resolve_run(run)
        trained_steps = (run_config or {}).get('base_inference_steps')
        trained_scale = (run_config or {}).get('base_noise_scale')
        trained_action_steps = (run_config or {}).get('base_action_steps')
        super().__init__(checkpoint, device, num_inference_steps or trained_steps, seed,
                         action_steps or trained_action_steps, warm_start,
                         trained_scale if noise_scale is None else noise_scale)
        self.agent = self.load_agent(checkpoint.parent / RESIDUAL)
        if 'state' not in self.config.obs_mode:
            raise ValueError(f'{run}: a residual needs a base that observes the state')
        self.space = NormalisedSpace(self.policy)

    kind = RESIDUAL_KIND

    def load_agent(self, path: Path) -> nn.Module:
        """Return the residual saved in ``path`` on this runner's device."""
        return ResidualAgent.from_checkpoint(path, self.device)

    def base_action(self, state: np.ndarray,
                    images: Optional[dict[str, np.ndarray]] = None) -> np.ndarray:
        """Return the frozen base's raw action for this step (advancing its chunk)."""
        return super().act_from_observation(state, images)

    def act_from_observation(self, state: np.ndarray,
                             images: Optional[dict[str, np.ndarray]] = None) -> np.ndarray:
        """Return the base action for this step plus the residual's correction."""
        return self.act_with_residual(state, images)[0]

    def act_with_residual(self, state: np.ndarray,
                          images: Optional[dict[str, np.ndarray]] = None,
                          explore: bool = False) -> tuple[np.ndarray, ResidualStep]:
        """
        Return ``(raw action, step)``: the corrected action and what produced it.

        With ``explore`` the residual is sampled from the actor's Gaussian (as
        PPO needs for online fine-tuning) instead of taken as its mean.
        """
        base = self.base_action(state, images)
        with torch.no_grad():  # not inference mode: PPO later backpropagates through these
            states = np.asarray(state)[None]
            state_norm = self.space.state_norm(states)
            base_norm = self.space.action_norm(base[None], states)
            residual, log_prob = self.agent.actor.act(state_norm, base_norm,
                                                      deterministic=not explore)
            value = self.agent.critic(state_norm, base_norm)
            action = self.space.action_raw(self.agent.actor.combine(base_norm, residual),
                                           states)[0]
        return action, ResidualStep(state_norm[0], base_norm[0], residual[0], log_prob[0],
                                    value[0])


def open_residual_policy(run: Path, options: PolicyOptions) -> ResidualPolicyRunner:
    """Open a residual run (frozen base plus residual): the ``residual`` policy kind."""
    return ResidualPolicyRunner.from_options(run, options)
