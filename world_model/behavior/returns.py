"""Lambda-returns (TD(lambda) targets) of imagined trajectories."""

import torch


def lambda_returns(rewards: torch.Tensor, values: torch.Tensor, continues: torch.Tensor,
                   gamma: float, lam: float) -> torch.Tensor:
    """
    Return ``R_0 .. R_{H-1}`` of ``H``-step trajectories (time on dimension 0).

    ``rewards[t]`` and ``continues[t]`` (probability the episode goes on) are
    those of the step from state t to t+1; ``values`` holds ``v(s_0) ..
    v(s_H)``. ``R_t = r_t + gamma c_t ((1 - lam) v_{t+1} + lam R_{t+1})`` with
    ``R_H = v_H``: lam = 0 is the one-step TD target, lam = 1 the discounted
    return bootstrapped at the horizon.
    """
    if values.shape[0] != rewards.shape[0] + 1 or continues.shape != rewards.shape:
        raise ValueError(f'need H rewards and continues and H + 1 values, got '
                         f'{tuple(rewards.shape)}, {tuple(continues.shape)}, '
                         f'{tuple(values.shape)}')
    following = values[-1]
    returns = []
    for t in reversed(range(rewards.shape[0])):
        following = rewards[t] + gamma * continues[t] * ((1 - lam) * values[t + 1]
                                                         + lam * following)
        returns.append(following)
    return torch.stack(returns[::-1])
