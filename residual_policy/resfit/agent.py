"""
The off-policy residual as a saved agent and as a policy (the ``resfit`` policy kind).

A ``resfit`` run folder is a residual run folder (:mod:`..resip.agent`): the
frozen base's checkpoint, ``config.json`` with the base settings, and
``residual/`` with this learner's actor and critic ensemble. It opens
wherever a policy opens (``vrl eval``, the policy node, replay evaluation,
distillation's teacher): the base runs as it ran in training, and the
actor's residual (no exploration noise) corrects every step.
"""

from pathlib import Path
from typing import NamedTuple, Optional, Union

import numpy as np
import torch
from torch import nn
from visual_rl_stack.core.checkpoints import load_checkpoint, save_checkpoint
from visual_rl_stack.core.policy import PolicyOptions
from visual_rl_stack.core.run_layout import PathLike, RESFIT_KIND
from visual_rl_stack.residual_policy.diffusion_bc.model.diffusion_policy import DiffusionPolicy
from visual_rl_stack.residual_policy.resip.agent import ResidualPolicyRunner

from .config import ResFiTConfig
from .learner import residual_action
from .networks import CriticEnsemble, ResidualActor

CHECKPOINT_KIND = 'resfit_residual'


class ResFiTStep(NamedTuple):
    """One step of a resfit policy: the raw action and, normalised, what a transition keeps."""

    action: np.ndarray
    state: np.ndarray
    base: np.ndarray
    sent: np.ndarray


class ResFiTAgent(nn.Module):
    """The deterministic residual actor and its critic ensemble, saved and loaded together."""

    def __init__(self, config: ResFiTConfig, actor: Optional[ResidualActor] = None,
                 critic: Optional[CriticEnsemble] = None):
        """Hold ``actor`` and ``critic`` (new ones for ``config`` when not given)."""
        super().__init__()
        self.config = config
        self.actor = actor if actor is not None else ResidualActor(config)
        self.critic = critic if critic is not None else CriticEnsemble(config)

    @classmethod
    def from_learner(cls, learner) -> 'ResFiTAgent':
        """Wrap a :class:`.learner.ResFiTLearner`'s networks (shared, not copied)."""
        return cls(learner.config, learner.actor, learner.critic)

    def save(self, path: PathLike) -> None:
        """Write the agent as a checkpoint folder (atomically)."""
        save_checkpoint(path, self, self.config.to_dict(), {}, CHECKPOINT_KIND)

    @classmethod
    def from_checkpoint(cls, path: PathLike,
                        device: Union[str, torch.device] = 'cpu') -> 'ResFiTAgent':
        """Load an agent saved by :meth:`save`; a mismatching checkpoint raises ValueError."""
        agent = load_checkpoint(path, lambda config, _: cls(ResFiTConfig.from_dict(config)),
                                CHECKPOINT_KIND, device)
        return agent.eval()


def resfit_config_for(policy: DiffusionPolicy, **settings) -> ResFiTConfig:
    """Return a :class:`ResFiTConfig` sized for ``policy``; unknown settings are refused."""
    return ResFiTConfig.from_dict({'state_dim': policy.state_features.output_dim,
                                   'action_dim': policy.config.action_dim, **settings})


class ResFiTPolicyRunner(ResidualPolicyRunner):
    """The frozen base corrected every step by the off-policy residual's actor."""

    kind = RESFIT_KIND

    def load_agent(self, path: Path) -> ResFiTAgent:
        """Return the off-policy residual saved in ``path``."""
        return ResFiTAgent.from_checkpoint(path, self.device)

    def act_from_observation(self, state: np.ndarray,
                             images: Optional[dict[str, np.ndarray]] = None) -> np.ndarray:
        """Return the base action for this step plus the actor's correction."""
        return self.act_step(state, images).action

    def act_step(self, state: np.ndarray, images: Optional[dict[str, np.ndarray]] = None,
                 generator: Optional[torch.Generator] = None) -> ResFiTStep:
        """Return this step's action and its normalised parts (exploring with ``generator``)."""
        base = self.base_action(state, images)
        states = np.asarray(state)[None]
        with torch.no_grad():
            state_norm = self.space.state_norm(states)
            base_norm = self.space.action_norm(base[None], states)
            sent = residual_action(self.agent.config, self.agent.actor, state_norm, base_norm,
                                   generator)
        return ResFiTStep(self.space.action_raw(sent, states)[0], state_norm[0].numpy(),
                          base_norm[0].numpy(), sent[0].numpy())


def open_resfit_policy(run: Path, options: PolicyOptions) -> ResFiTPolicyRunner:
    """Open an off-policy residual run: the ``resfit`` policy kind."""
    return ResFiTPolicyRunner.from_options(run, options)
