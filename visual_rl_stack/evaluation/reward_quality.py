"""
How good a dense reward is: rising along successes, and telling them from failures.

Episodes of several controllers (the scripted expert, a noisy expert, trained
policies) run in the simulator, and a registered reward (``kagi``: the
keypoint-affordance progress; ``staged``: the stage planner's staged reward)
is computed exactly as residual RL computes it, through the reward
registry. Its dense level ``phi`` is recorded after every step. Two measures
follow:

- **monotone on successes**: for each successful episode, the fraction of
  steps at which ``phi`` does not fall by more than ``tolerance`` and the
  rank correlation (Spearman) of ``phi`` with time;
- **separation**: the ROC AUC of an episode's final ``phi`` as a score of
  success against failure (0.5: no better than chance, 1: perfect).

An episode whose query (or plan) failed has no dense reward; it is counted
and left out of both measures (its reward is the sparse one alone). A reward
that counts stages (``stage_count``) is also compared with the task's own
count (``stages_completed``, the stacking tasks) at every step.
"""

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Protocol, Sequence

from matplotlib.figure import Figure
import numpy as np
from visual_rl_stack.core.policy import Controller, PolicyOptions
from visual_rl_stack.evaluation.episodes import open_evaluated_policy, PolicyController
from visual_rl_stack.sim.config import SimConfig
from visual_rl_stack.sim.experts import make_expert
from visual_rl_stack.sim.scene import StepResult, TabletopSim

#: Prefix of a noisy scripted expert source, e.g. ``expert:0.5`` (noise: action-limit fraction).
EXPERT = 'expert'


class ScoredReward(Protocol):
    """A reward function of the registry that shows its dense level and whether it planned."""

    #: The dense level phi after the latest step (its progress, below the success reward).
    level: float
    #: Whether this episode has a dense reward at all, and what it is (or why not).
    planned: bool
    diagnostic: str

    def reset(self, sim: TabletopSim, seed: Optional[int] = None) -> None:
        """Start an episode."""

    def __call__(self, sim: TabletopSim, result: StepResult) -> float:
        """Return the reward of the step just taken."""


@dataclass
class ScoredEpisode:
    """The dense progress of one episode after every step, and how the episode ended."""

    source: str
    seed: int
    success: bool
    steps: int
    planned: bool
    diagnostic: str
    phi: list[float]
    #: The level at the reset, before the first step.
    start: float = 0.0
    #: Fraction of steps at which the reward's stage count equals the task's (None: not both).
    stage_agreement: Optional[float] = None

    @property
    def final(self) -> float:
        """Return the progress after the last step."""
        return self.phi[-1] if self.phi else 0.0


def expert_noise(source: str) -> Optional[float]:
    """Return the noise of an ``expert`` / ``expert:NOISE`` source, or None for a policy."""
    name, _, noise = source.partition(':')
    if name != EXPERT:
        return None
    try:
        value = float(noise or 0.0)
    except ValueError:
        raise ValueError(f'expert noise must be a number, got {source!r}') from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f'expert noise must lie in [0, 1], got {source!r}')
    return value


def open_source(task: str, source: str) -> tuple[Callable[[TabletopSim, int], Controller], str]:
    """Return ``(sim, seed) -> controller`` for a source, and the action mode its sim needs."""
    noise = expert_noise(source)
    if noise is not None:
        return (lambda _sim, seed: make_expert(task, 'delta', noise,
                                               np.random.default_rng(seed))), 'delta'
    policy = open_evaluated_policy(source, PolicyOptions())
    if policy.uses_images:
        raise ValueError(f'{source} observes images; reward quality runs state policies only')
    return (lambda sim, _seed: PolicyController(policy, sim)), policy.action_mode or 'delta'


def score_episode(sim: TabletopSim, controller: Controller, seed: int, reward: ScoredReward,
                  source: str) -> ScoredEpisode:
    """Run one episode from ``seed`` with the reward computed as residual RL does."""
    sim.reset(seed=seed)
    controller.reset()
    reward.reset(sim, seed)
    start = reward.level
    phi, agree, success, steps = [], [], False, 0
    for steps in range(1, sim.max_episode_steps + 1):
        result = sim.step(controller.act(sim))
        reward(sim, result)
        phi.append(reward.level)
        count = getattr(reward, 'stage_count', None)
        if count is not None and 'stages_completed' in result.info:
            agree.append(count == result.info['stages_completed'])
        if result.success:
            success = True
            break
    return ScoredEpisode(source, seed, success, steps, reward.planned, reward.diagnostic, phi,
                         start, float(np.mean(agree)) if agree else None)


def score_source(task: str, source: str, seeds: Sequence[int], reward: ScoredReward,
                 progress: Optional[Callable[[], None]] = None) -> list[ScoredEpisode]:
    """Run ``source`` (``expert[:NOISE]`` or a state policy) on every seed."""
    make_controller, action_mode = open_source(task, source)
    sim = TabletopSim(SimConfig(task=task, action_mode=action_mode, cameras=()))
    try:
        episodes = []
        for seed in seeds:
            episodes.append(score_episode(sim, make_controller(sim, seed), seed, reward, source))
            if progress is not None:
                progress()
        return episodes
    finally:
        sim.close()


def monotone_fraction(phi: Sequence[float], start: float, tolerance: float) -> float:
    """Return the fraction of steps at which ``phi`` falls by no more than ``tolerance``."""
    values = np.concatenate([[start], np.asarray(phi, dtype=float)])
    return float(np.mean(np.diff(values) >= -tolerance)) if len(values) > 1 else 1.0


def ranks(values: np.ndarray) -> np.ndarray:
    """Return the ranks of ``values`` (1-based, ties get their mean rank)."""
    order = np.argsort(values, kind='stable')
    ranked = np.empty(len(values))
    ranked[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        tied = values == value
        ranked[tied] = ranked[tied].mean()
    return ranked


def spearman_with_time(phi: Sequence[float]) -> Optional[float]:
    """Return the rank correlation of ``phi`` with the step index (None if phi is constant)."""
    values = np.asarray(phi, dtype=float)
    if len(values) < 2 or np.ptp(values) == 0:
        return None
    return float(np.corrcoef(ranks(values), np.arange(len(values)))[0, 1])


def roc_auc(scores: Sequence[float], positive: Sequence[bool]) -> Optional[float]:
    """Return the ROC AUC of ``scores`` for the positives (Mann-Whitney); None without both."""
    scores, positive = np.asarray(scores, dtype=float), np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    rank_sum = ranks(scores)[positive].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def summarise(episodes: Sequence[ScoredEpisode], tolerance: float = 1e-3) -> dict:
    """Return the monotonicity and separation measures (module doc) over planned episodes."""
    planned = [e for e in episodes if e.planned]
    successes = [e for e in planned if e.success]
    fractions = [monotone_fraction(e.phi, e.start, tolerance) for e in successes]
    agreements = [e.stage_agreement for e in planned if e.stage_agreement is not None]
    correlations = [c for c in (spearman_with_time(e.phi) for e in successes) if c is not None]
    per_source = {}
    for source in dict.fromkeys(e.source for e in episodes):
        mine = [e for e in planned if e.source == source]
        per_source[source] = {
            'episodes': sum(e.source == source for e in episodes), 'planned': len(mine),
            'successes': sum(e.success for e in mine),
            'median_final_phi_success': _median([e.final for e in mine if e.success]),
            'median_final_phi_failure': _median([e.final for e in mine if not e.success]),
        }
    return {
        'episodes': len(episodes), 'planned': len(planned), 'successes': len(successes),
        'failures': len(planned) - len(successes), 'tolerance': tolerance,
        'monotone_step_fraction_median': _median(fractions),
        'monotone_step_fraction_min': min(fractions) if fractions else None,
        'spearman_with_time_median': _median(correlations),
        'auc_final_phi': roc_auc([e.final for e in planned], [e.success for e in planned]),
        'stage_agreement_median': _median(agreements),
        'stage_agreement_min': min(agreements) if agreements else None,
        'per_source': per_source,
        'not_planned': [{'source': e.source, 'seed': e.seed, 'diagnostic': e.diagnostic}
                        for e in episodes if not e.planned],
    }


def _median(values: Sequence[float]) -> Optional[float]:
    return float(np.median(values)) if len(values) else None


def episode_rows(episodes: Sequence[ScoredEpisode]) -> list[dict]:
    """Return the episodes as JSON-ready dicts."""
    return [asdict(e) for e in episodes]


def plot_quality(episodes: Sequence[ScoredEpisode], out_path: Path, title: str) -> None:
    """Draw phi against steps (successes green, failures red) and the final-phi histograms."""
    figure = Figure(figsize=(11, 4), dpi=100)
    traces, histogram = figure.subplots(1, 2)
    planned = [e for e in episodes if e.planned]
    for episode in planned:
        traces.plot(np.arange(len(episode.phi) + 1), [episode.start] + episode.phi, linewidth=0.8,
                    alpha=0.5, color='tab:green' if episode.success else 'tab:red')
    traces.set_xlabel('step')
    traces.set_ylabel('dense level phi')
    traces.set_title('phi along episodes (green: success, red: failure)', fontsize=9)
    top = max([e.final for e in planned] + [0.5])
    bins = np.linspace(0.0, top, 26)
    for success, colour, label in ((True, 'tab:green', 'success'),
                                   (False, 'tab:red', 'failure')):
        histogram.hist([e.final for e in planned if e.success == success], bins=bins,
                       color=colour, alpha=0.6, label=label)
    histogram.set_xlabel('final phi of the episode')
    histogram.set_ylabel('episodes')
    histogram.legend(fontsize=8)
    for axes in (traces, histogram):
        axes.grid(True, alpha=0.3)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_path, format='png')
