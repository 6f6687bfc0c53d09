r"""
``vrl train-residual``: refine a frozen diffusion BC policy with a PPO-trained residual (ResiP).

Example::

    vrl train-residual --task stack --base bc_state_stack --out runs/rl/stack --envs 8
    vrl train-residual --task stack --base bc_state_stack --out runs/rl/stack \\
        --total-steps 2000000 --resume
    vrl train-residual --task stack --base bc_state_stack --out runs/rl/stack2 \\
        --init-residual runs/rl/stack

``--base`` is a shipped model name (``vrl models``) or a state-based BC run
folder. Residual and PPO settings other than the flags are given as
``--residual key=value`` and ``--ppo key=value`` (JSON values). The run
folder layout is described in ``residual_policy/train_residual.py``;
``vrl eval --policy RUN`` evaluates base + residual.
"""

import argparse

from .train_bc_command import parse_override


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``vrl train-residual`` arguments to ``parser``."""
    from .residual_policy.residual_env import REWARD_FUNCTIONS
    parser.add_argument('--task', required=True, help='task to train on, e.g. peg_insert')
    parser.add_argument('--base', required=True,
                        help='frozen base: shipped model name or state-based BC run folder')
    parser.add_argument('--out', required=True, help='run folder to write')
    parser.add_argument('--envs', type=int, default=8,
                        help='parallel simulator worker processes')
    parser.add_argument('--total-steps', type=int, default=1_000_000,
                        help='environment steps to train for (with --resume: the new total)')
    parser.add_argument('--rollout-steps', type=int, default=None,
                        help='steps per env per PPO iteration (default: the episode limit)')
    parser.add_argument('--base-steps', type=int, default=4,
                        help='DDIM steps of the frozen base inside RL')
    parser.add_argument('--base-noise-scale', type=float, default=1.0,
                        help="scale of the frozen base's initial noise per chunk (0: a "
                             'deterministic base; evaluation then uses the same)')
    parser.add_argument('--base-action-steps', type=int, default=None,
                        help="actions the frozen base executes per chunk (default: the base's "
                             'n_action_steps; evaluation then uses the same)')
    parser.add_argument('--eval-every', type=int, default=5,
                        help='validate the deterministic policy every N iterations')
    parser.add_argument('--val-episodes', type=int, default=16,
                        help='validation episodes (seeds --val-seed-start ..)')
    parser.add_argument('--val-seed-start', type=int, default=2000,
                        help='first validation seed; keep it apart from evaluation seeds')
    parser.add_argument('--reward', choices=sorted(REWARD_FUNCTIONS), default='sparse',
                        help='reward function (sparse: +1 on success; stages: +1 per new '
                             'stage of a multi-stage task too; shaped: sparse plus the '
                             "decrease of the task's goal distance, 1 per 5 cm; upright: "
                             "sparse minus the growth of the peg's tilt, 1 per 90 degrees)")
    parser.add_argument('--seed', type=int, default=0, help='training seed')
    parser.add_argument('--time-limit-min', type=float, default=None,
                        help='stop this session after N minutes (at an iteration boundary)')
    parser.add_argument('--residual', dest='residual_overrides', type=parse_override,
                        action='append', default=[], metavar='KEY=VALUE',
                        help='override a ResidualConfig field, e.g. residual_scale=0.2')
    parser.add_argument('--ppo', dest='ppo_overrides', type=parse_override, action='append',
                        default=[], metavar='KEY=VALUE',
                        help='override a PPOConfig field, e.g. actor_lr=1e-4')
    parser.add_argument('--init-residual', default=None, metavar='RUN',
                        help='start from the residual (actor and critic) of this residual run '
                             'or shipped model, trained over the same base and base settings')
    parser.add_argument('--resume', action='store_true',
                        help='continue the run in --out from its training state')
    parser.add_argument('--no-progress', action='store_true', help='hide the progress bar')


def main(args: argparse.Namespace) -> int:
    """Run ``vrl train-residual`` and print a one-line summary."""
    from .residual_policy.ppo import PPOConfig
    from .residual_policy.train_residual import ResidualTrainSettings, train_residual
    settings = ResidualTrainSettings(
        task=args.task, base=args.base, envs=args.envs, total_steps=args.total_steps,
        rollout_steps=args.rollout_steps, base_inference_steps=args.base_steps,
        base_noise_scale=args.base_noise_scale, base_action_steps=args.base_action_steps,
        eval_every=args.eval_every, val_episodes=args.val_episodes,
        val_seed_start=args.val_seed_start, reward=args.reward, seed=args.seed,
        time_limit_min=args.time_limit_min, init_residual=args.init_residual)
    ppo = PPOConfig.from_dict({**PPOConfig().to_dict(), **dict(args.ppo_overrides)})
    summary = train_residual(args.out, settings, dict(args.residual_overrides), ppo,
                             resume=args.resume, progress=not args.no_progress)
    start = 'frozen base' if args.init_residual is None else f'start: {args.init_residual}'
    print(f'residual on {args.task}: validation success {summary["baseline_val_success"]:.0%}'
          f' ({start}) -> best {summary["best_val_success"]:.0%} at '
          f'{summary["best_at_env_steps"]} env steps; {summary["env_steps"]} steps in '
          f'{summary["wall_s"] / 60:.1f} min; best residual in {args.out}/residual')
    return 0
