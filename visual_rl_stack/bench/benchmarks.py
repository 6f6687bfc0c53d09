"""
``vrl bench``: throughput and latency measurements (never asserted in tests).

``sim`` compares, on the same scene and cameras, raw PyBullet stepping, the
gymnasium env and the sim node over ROS in lockstep; ``perception`` measures
camera-to-multiview latency over DDS; ``policy`` measures diffusion-policy
chunk inference on the CPU at DDIM 4, 8 and 16 (state and image policies, see
:mod:`visual_rl_stack.residual_policy.diffusion_bc.latency_bench`); ``rl`` compares residual
PPO's training throughput with the raw vectorised environment and with
stable-baselines3's PPO (:mod:`visual_rl_stack.residual_policy.resip.rl_bench`);
``world-model`` times the world-model node's per-step update
(:mod:`visual_rl_stack.world_model.monitor_bench`). Results are JSON for docs/results.md.
"""

from pathlib import Path
from typing import Optional

#: 'all' runs every suite but 'soak' (an hour or more of the graph under ros2 launch).
SUITES = ('sim', 'perception', 'policy', 'rl', 'world-model', 'all', 'soak')


def bench_sim(task: str, steps: int, views: list[str], size: int, repeats: int) -> dict:
    """
    Measure steps per second of raw PyBullet, the env and the lockstep sim node.

    Two raw baselines: constant joint targets (``raw_steps_per_s``) and the same
    loop with one IK call per step for a fixed TCP target (``raw_ik_steps_per_s``),
    which is what an end-effector-controlled loop written directly against
    PyBullet costs; ``env_over_raw_ik`` is the like-for-like ratio. Each rate
    is the best of ``repeats`` interleaved runs, so a burst of load on a shared
    machine does not land on one side of a ratio only.
    """
    from dataclasses import replace

    from visual_rl_stack.sim.config import SimConfig, default_cameras
    from visual_rl_stack.sim.node_bench import lockstep_steps_per_second
    from visual_rl_stack.sim.raw_bench import (
        env_steps_per_second, raw_pybullet_ik_steps_per_second,
        raw_pybullet_steps_per_second)
    config = SimConfig(task=task, cameras=tuple(
        replace(c, width=size, height=size) for c in default_cameras() if c.name in views))
    rows = {}
    for label, cams in (('no_render', []), ('render', list(views))):
        runs = [(raw_pybullet_steps_per_second(task, steps, cams, config),
                 raw_pybullet_ik_steps_per_second(task, steps, cams, config),
                 env_steps_per_second(task, steps, cams, config),
                 lockstep_steps_per_second(task, steps, tuple(cams), size, size))
                for _ in range(repeats)]
        raw, raw_ik, env, node = (max(rates) for rates in zip(*runs))
        rows[label] = {
            'views': cams, 'size': size, 'repeats': repeats, 'raw_steps_per_s': raw,
            'raw_ik_steps_per_s': raw_ik,
            'env_steps_per_s': env, 'node_lockstep_steps_per_s': node,
            'env_over_raw': env / raw, 'env_over_raw_ik': env / raw_ik,
            'node_over_raw': node / raw, 'node_over_env': node / env,
        }
        print(f'sim [{label}] raw {raw:.1f}/s  raw+IK {raw_ik:.1f}/s  env {env:.1f}/s '
              f'({env / raw:.2f}x raw, {env / raw_ik:.2f}x raw+IK)  '
              f'node {node:.1f}/s ({node / env:.2f}x env)')
    return rows


def bench_perception(frames: int, views: list[str], size: int) -> dict:
    """Camera-to-``/perception/multiview/image`` latency over real DDS."""
    from visual_rl_stack.perception.latency import measure_multiview_latency
    result = measure_multiview_latency(frames=frames, views=tuple(views), width=size,
                                       height=size)
    print(f'perception multiview latency: median {result["median_ms"]:.2f} ms, '
          f'p99 {result["p99_ms"]:.2f} ms')
    return result


def bench_policy(state_run: Optional[Path], image_run: Optional[Path], chunks: int) -> dict:
    """Diffusion-policy chunk latency on the CPU (median, p99, amortised per control step)."""
    from visual_rl_stack.residual_policy.diffusion_bc.latency_bench import (
        policy_latency)
    result = policy_latency(state_run, image_run, chunks=chunks)
    print(f'policy: torch {result["torch_version"]}, {result["torch_threads"]} threads, '
          f'{chunks} chunks per setting')
    for name in ('state', 'image'):
        row = result[name]
        for steps, ms in row['ddim'].items():
            print(f'policy [{name}, {row["weights"]}, {row["parameters"]} params] DDIM {steps}: '
                  f'chunk median {ms["chunk_median_ms"]:.2f} ms, p99 {ms["chunk_p99_ms"]:.2f} ms, '
                  f'{ms["per_step_amortised_ms"]:.2f} ms per step '
                  f'(/{row["n_action_steps"]})')
    print(f'policy: lerobot: {result["lerobot"]["reason"]}')
    return result


def bench_rl(task: str, base: str, envs: int, iterations: int) -> dict:
    """Residual PPO and off-policy throughput against the raw worker envs and SB3's PPO."""
    import torch
    from visual_rl_stack.residual_policy.resfit.bench import online_step_latency, resfit_rate
    from visual_rl_stack.residual_policy.resip.rl_bench import rl_throughput
    result = rl_throughput(task, base, envs, iterations)
    result['resip']['torch_threads'] = torch.get_num_threads()
    result['resfit'] = resfit_rate(task, base, envs)
    result['resfit_online'] = online_step_latency(task, base)
    resip, sb3, resfit = result['resip'], result['sb3'], result['resfit']
    print(f'rl [{task}, {envs} envs] raw {result["raw_steps_per_s"]:.0f} steps/s; '
          f'ResiP collect {resip["collect_steps_per_s"]:.0f}/s, train '
          f'{resip["train_steps_per_s"]:.0f}/s ({result["resip_train_over_raw"]:.2f}x raw); '
          + (f'SB3 PPO {sb3["steps_per_s"]:.0f}/s' if sb3.get('steps_per_s')
             else f'SB3: {sb3["reason"]}'))
    print(f'rl [{task}, {envs} envs] ResFiT collect {resfit["collect_steps_per_s"]:.0f} '
          f'steps/s, {resfit["updates_per_s"]:.0f} updates/s '
          f'({resfit["torch_threads"]} torch thread), '
          f'{resfit["wall_s_per_10k_steps"] / 60:.1f} min per 10 k steps at UTD {resfit["utd"]:g}')
    online = result['resfit_online']
    for mode in ('background', 'between_episodes'):
        row = online[mode]
        print(f'rl [{task}, 1 env] ResFiT online ({mode}): control step median '
              f'{row["step_median_ms"]:.1f} ms, p99 {row["step_p99_ms"]:.1f} ms; episode end '
              f'{row["episode_end_median_ms"]:.0f} ms; {row["updates"]} updates in '
              f'{row["steps"]} steps')
    return result


def bench_world_model(task: str, world_model: Optional[Path], episodes: int) -> dict:
    """Time the world-model node's update, on privileged state only and with the MAE."""
    from visual_rl_stack.world_model.mae.model import load_mae
    from visual_rl_stack.world_model.monitor_bench import monitor_latency
    result = {'privileged': monitor_latency(task, episodes)}
    if world_model is not None:
        result['with_world_model'] = monitor_latency(task, episodes, load_mae(world_model))
    for name, row in result.items():
        print(f'world-model node [{task}, {name}] update median {row["median_ms"]:.2f} ms, '
              f'p99 {row["p99_ms"]:.2f} ms over {row["updates"]} steps '
              f'({100 * row["ok_fraction"]:.0f} % judged OK)')
    return result
