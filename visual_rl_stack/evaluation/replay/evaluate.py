"""
``vrl replay-eval``: replay a folder of episode bags through the nodes and write the report.

Every bag is one episode (:mod:`.session` replays it, :mod:`.scoring` scores
it, :mod:`.report` draws it). An episode that cannot be evaluated (a corrupt
or truncated bag, no control steps) is listed with the reason and the
others go on; a component that cannot run on an episode (missing topics,
other cameras, another observation layout) is left out of it with the reason.
"""

import os
from pathlib import Path
from typing import Optional

from rclpy.context import Context
from rclpy.exceptions import NotInitializedException
from tqdm import tqdm
from visual_rl_stack.core.policy import open_policy, PolicyOptions
from visual_rl_stack.data.bags import BagError, find_bags
from visual_rl_stack.ros.shutdown import ending_on_shutdown, init_process_context

from .recorded import read_recorded
from .report import episode_plots, write_report
from .scoring import EpisodeSeries, score_episode, summarise
from .session import plan_components, replay_episode, ReplaySettings


def replay_evaluate(bags: Path, settings: ReplaySettings, out: Path, progress: bool = True,
                    command: str = '', context: Optional[Context] = None) -> dict:
    """
    Replay every bag under ``bags`` with ``settings``; write the report to ``out``.

    Returns the summary document (what ``summary.json`` holds). Without
    ``context`` one is made on ``ROS_DOMAIN_ID`` (default 42) and shut down.
    Ctrl-C, SIGTERM or a shutdown of ``context`` stop it after the finished
    episodes, which are reported (the header's ``interrupted`` says so).
    """
    if settings.policy is None and settings.affordance is None and settings.world_model is None:
        raise ValueError('nothing to evaluate: give a policy, an affordance backend or a '
                         'world model')
    paths = find_bags(bags)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    policy = (open_policy(settings.policy, PolicyOptions(device=settings.device))
              if settings.policy else None)
    own_context = context is None
    if own_context:
        context = init_process_context(domain_id=int(os.environ.get('ROS_DOMAIN_ID', '42')))
    results: list[dict] = []
    series: list[EpisodeSeries] = []
    plots: dict[str, dict] = {}
    try:
        bar = tqdm(paths, disable=not progress, desc='replay-eval', unit='episode')
        with ending_on_shutdown(context):
            for bag in bar:
                bar.set_postfix_str(bag.name)
                evaluated = _evaluate_bag(bag, settings, policy, out, context)
                if evaluated is None:
                    break  # stopped during this episode's replay: it is cut short
                result, one_series, one_plots = evaluated
                results.append(result)
                series.append(one_series)
                plots[result['episode']] = one_plots
        interrupted = len(results) < len(paths)
    finally:
        if own_context:
            context.try_shutdown()
    summary = summarise(results, series)
    header = {'bags': str(bags), 'policy': settings.policy, 'affordance': settings.affordance,
              'world_model': settings.world_model, 'device': settings.device,
              'safety_limits': 'deployed' if settings.deployed_limits else 'simulator',
              'command': command}
    if interrupted:
        header['interrupted'] = (f'stopped (Ctrl-C or shutdown) after {len(results)} of '
                                 f'{len(paths)} bags; the report holds those finished')
    paths_written = write_report(out, summary, results, plots, header)
    print(f'replay-eval: {summary["replayed"]} / {summary["episodes"]} episodes'
          + (f' ({header["interrupted"]})' if interrupted else '')
          + f'; report {paths_written["html"]}')
    return {**header, 'summary': summary, 'episodes': results}


def _evaluate_bag(bag: Path, settings: ReplaySettings, policy: Optional[object], out: Path,
                  context: Context) -> Optional[tuple[dict, EpisodeSeries, dict]]:
    """
    Replay and score one bag; a bag that cannot be replayed gives a result with an error.

    None when ``context`` was shut down (Ctrl-C) during the replay.
    """
    try:
        episode = read_recorded(bag)
    except BagError as error:
        return ({'episode': bag.name, 'bag': str(bag), 'error': str(error)}, EpisodeSeries(),
                {})
    components = plan_components(episode, settings, policy)
    if not (components.policy or components.affordance or components.world_model):
        reasons = '; '.join(f'{k}: {v}' for k, v in components.skipped.items())
        return ({'episode': episode.name, 'bag': str(bag),
                 'error': f'nothing to evaluate on this bag ({reasons})'}, EpisodeSeries(), {})
    try:
        trace = replay_episode(episode, components, settings, context)
    except (ValueError, ImportError, RuntimeError, TimeoutError, BagError,
            NotInitializedException) as error:
        # A node that cannot start on this bag (its parameters, its model) fails this episode;
        # one refused because SIGTERM or Ctrl-C shut the context down during start-up stops.
        if not context.ok():
            return None
        return ({'episode': episode.name, 'bag': str(bag),
                 'error': f'replay failed: {type(error).__name__}: {error}'}, EpisodeSeries(), {})
    if not context.ok():
        return None
    result, series = score_episode(episode, components, trace)
    plots = episode_plots(out / 'episodes' / episode.name, result, series, trace,
                          episode.stamps, episode.reward, episode.success, episode.action[:, -1])
    return result, series, {name: f'episodes/{path}' for name, path in plots.items()}
