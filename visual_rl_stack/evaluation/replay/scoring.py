"""
Score one replayed episode against its bag, and many episodes together: plain numbers.

Per episode the result is a JSON-ready dict (:func:`score_episode`) plus the
per-step series the plots and the pooled numbers are made from
(:class:`EpisodeSeries`). :func:`summarise` pools episodes: per-step errors
over all steps, the affordance score's AUC over successes and failures,
the world model's agreement with ``/task/success``.
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .metrics import action_errors, correlation, first_step, keypoint_displacements, summary
from .recorded import RecordedEpisode
from .session import Components, DONE, EpisodeTrace
from ..reward_quality import roc_auc


@dataclass
class EpisodeSeries:
    """Per-step arrays of one episode (T steps; NaN where nothing was said)."""

    errors: dict[str, np.ndarray] = field(default_factory=dict)
    expert_errors: dict[str, np.ndarray] = field(default_factory=dict)
    dense: Optional[np.ndarray] = None
    progress: Optional[np.ndarray] = None
    wm_reward: Optional[np.ndarray] = None
    stage_index: Optional[np.ndarray] = None
    displacement: Optional[np.ndarray] = None


def score_episode(episode: RecordedEpisode, components: Components, trace: EpisodeTrace
                  ) -> tuple[dict, EpisodeSeries]:
    """Return the episode's numbers and per-step series (see the module doc)."""
    steps = len(episode)
    series = EpisodeSeries()
    result = {'episode': episode.name, 'bag': str(episode.bag), 'steps': steps,
              'duration_s': episode.duration, 'wall_s': trace.wall_time,
              'speed': episode.duration / trace.wall_time if trace.wall_time > 0 else None,
              'success': episode.succeeded if episode.has_success else None,
              'instruction': episode.instruction, 'task': episode.task,
              'skipped': dict(components.skipped),
              'notes': list(episode.notes) + list(trace.notes),
              'missed_steps': dict(trace.missed)}
    if components.policy:
        result['policy'] = _score_policy(episode, components, trace, series)
    if components.affordance:
        result['affordance'] = _score_affordance(episode, trace, series)
    if components.world_model:
        result['world_model'] = _score_world_model(episode, trace, series)
    return result, series


def _score_policy(episode: RecordedEpisode, components: Components, trace: EpisodeTrace,
                  series: EpisodeSeries) -> dict:
    """Score action error against the recorded (and expert) commands, latency, interventions."""
    predicted = np.full_like(episode.action, np.nan)
    for row, stamp in enumerate(episode.stamps):
        if int(stamp) in trace.commands:
            predicted[row] = trace.commands[int(stamp)]
    series.errors = action_errors(predicted, episode.action, components.action_mode)
    out = {name: summary(values) for name, values in series.errors.items()}
    if episode.expert_action is not None:
        series.expert_errors = action_errors(predicted, episode.expert_action,
                                             components.action_mode)
        out['vs_expert'] = {name: summary(v) for name, v in series.expert_errors.items()}
    answered = [int(s) for s in episode.stamps if int(s) in trace.commands]
    codes = Counter(code for s in answered for code in trace.interventions.get(s, []))
    out['answered_steps'] = len(answered)
    out['intervention_fraction'] = (sum(1 for s in answered if trace.interventions.get(s))
                                    / len(answered) if answered else None)
    out['intervention_codes'] = dict(codes)
    out['chunk_latency_ms'] = trace.policy_report.get('inference_latency_ms', {})
    return out


def _score_affordance(episode: RecordedEpisode, trace: EpisodeTrace,
                      series: EpisodeSeries) -> dict:
    """Keypoint stability across the node's answers and the dense reward over time."""
    series.dense = trace.series('dense', len(episode))
    answers = [points for _, points in trace.keypoints]
    moved = keypoint_displacements(answers)
    series.displacement = moved.mean(axis=1) if moved.size else None
    # The score is the last dense term before any success payment, as `vrl reward-quality`
    # scores an episode by its final dense level.
    unpaid = series.dense[(episode.reward == 0) & np.isfinite(series.dense)]
    finite = series.dense[np.isfinite(series.dense)]
    return {'answers': len(answers),
            'keypoint_displacement_cm': summary(moved.ravel() * 100.0),
            'dense_mean': float(finite.mean()) if len(finite) else None,
            'dense_final': float(finite[-1]) if len(finite) else None,
            'score': float(unpaid[-1]) if len(unpaid) else None}


def _score_world_model(episode: RecordedEpisode, trace: EpisodeTrace,
                       series: EpisodeSeries) -> dict:
    """Stage timeline against recorded success; predicted reward against recorded signals."""
    steps = len(episode)
    series.progress = trace.series('progress', steps)
    series.wm_reward = trace.series('wm_reward', steps)
    index = np.full(steps, np.nan)
    done = np.zeros(steps, dtype=bool)
    for frame, label in trace.stage:
        if 0 <= frame < steps:
            number, _, name = label.partition(' ')
            index[frame] = float(number) if number.isdigit() else np.nan
            done[frame] = name == DONE
    series.stage_index = index
    done_step, success_step = first_step(done), first_step(episode.success)
    agrees = None
    if episode.has_success:
        agrees = bool(done.any()) == episode.succeeded
    lag = (None if done_step is None or success_step is None
           else (done_step - success_step) / episode.control_hz)
    changes = [[int(f), label] for i, (f, label) in enumerate(trace.stage)
               if i == 0 or label != trace.stage[i - 1][1]]
    has_reward = bool(np.isfinite(series.wm_reward).any())
    return {'stages': changes, 'final_stage': trace.stage[-1][1] if trace.stage else None,
            'done_step': done_step, 'success_step': success_step, 'done_lag_s': lag,
            'agrees_with_success': agrees,
            'final_progress': (float(series.progress[np.isfinite(series.progress)][-1])
                               if np.isfinite(series.progress).any() else None),
            'keyframes': list(trace.keyframes),
            'reward_vs_progress': _agreement(series.wm_reward, series.progress)
            if has_reward else None,
            'reward_vs_recorded': _agreement(series.wm_reward, episode.reward)
            if has_reward else None}


def _agreement(predicted: np.ndarray, target: np.ndarray) -> dict:
    """Return mean absolute error and correlation of two per-step series."""
    keep = np.isfinite(predicted) & np.isfinite(target)
    return {'mae': float(np.abs(predicted[keep] - target[keep]).mean()) if keep.any() else None,
            'r': correlation(predicted, target), 'n': int(keep.sum())}


def summarise(results: list[dict], series: list[EpisodeSeries]) -> dict:
    """Pool the scored episodes (failed ones are counted, not scored)."""
    scored = [(r, s) for r, s in zip(results, series) if not r.get('error')]
    speeds = [r['speed'] for r, _ in scored if r.get('speed')]
    out = {'episodes': len(results), 'replayed': len(scored),
           'failed': [r['episode'] for r in results if r.get('error')],
           'speed': summary(speeds),
           'wall_s_per_episode': summary([r['wall_s'] for r, _ in scored]),
           'duration_s_per_episode': summary([r['duration_s'] for r, _ in scored])}
    policy = [(r, s) for r, s in scored if 'policy' in r]
    if policy:
        pooled = {name: np.concatenate([s.errors[name] for _, s in policy])
                  for name in ('translation', 'rotation', 'gripper')}
        answered = sum(r['policy']['answered_steps'] for r, _ in policy)
        intervened = sum(round((r['policy']['intervention_fraction'] or 0.0)
                               * r['policy']['answered_steps']) for r, _ in policy)
        latencies = [r['policy']['chunk_latency_ms'] for r, _ in policy
                     if r['policy']['chunk_latency_ms'].get('median') is not None]
        out['policy'] = {
            'episodes': len(policy), **{name: summary(v) for name, v in pooled.items()},
            'intervention_fraction': intervened / answered if answered else None,
            'chunk_latency_ms': {
                'median_of_episodes': float(np.median([x['median'] for x in latencies]))
                if latencies else None,
                'worst_p99': float(max(x['p99'] for x in latencies)) if latencies else None,
                'chunks': int(sum(x.get('chunks', 0) for x in latencies))}}
        experts = [s for _, s in policy if s.expert_errors]
        if experts:
            out['policy']['vs_expert'] = {
                name: summary(np.concatenate([s.expert_errors[name] for s in experts]))
                for name in ('translation', 'rotation', 'gripper')}
    affordance = [r for r, _ in scored if 'affordance' in r]
    if affordance:
        labelled = [r for r in affordance
                    if r['success'] is not None and r['affordance']['score'] is not None]
        moved = [s.displacement for r, s in scored if 'affordance' in r
                 and s.displacement is not None]
        out['affordance'] = {
            'episodes': len(affordance),
            'auc_success_vs_failure': roc_auc([r['affordance']['score'] for r in labelled],
                                              [r['success'] for r in labelled]),
            'successes': sum(bool(r['success']) for r in labelled),
            'failures': sum(not r['success'] for r in labelled),
            'keypoint_displacement_cm': summary(np.concatenate(moved) * 100.0 if moved else []),
            'score_success': summary([r['affordance']['score'] for r in labelled
                                      if r['success']]),
            'score_failure': summary([r['affordance']['score'] for r in labelled
                                      if not r['success']])}
    world = [(r, s) for r, s in scored if 'world_model' in r]
    if world:
        agree = [r['world_model']['agrees_with_success'] for r, _ in world
                 if r['world_model']['agrees_with_success'] is not None]
        with_reward = [s for _, s in world if np.isfinite(s.wm_reward).any()]
        out['world_model'] = {
            'episodes': len(world),
            'agreement_with_success': sum(agree) / len(agree) if agree else None,
            'done_lag_s': summary([r['world_model']['done_lag_s'] for r, _ in world
                                   if r['world_model']['done_lag_s'] is not None]),
            'final_progress': summary([r['world_model']['final_progress'] for r, _ in world
                                       if r['world_model']['final_progress'] is not None]),
            'reward_vs_progress': _agreement(
                np.concatenate([s.wm_reward for s in with_reward]),
                np.concatenate([s.progress for s in with_reward])) if with_reward else None}
    return out
