"""Imagination actor-critic: lambda-returns by hand, rollout shapes, learning signals."""

import pytest
import torch
from visual_rl_stack.world_model.behavior.actor_critic import (ActorCritic, AgentNets,
                                                               BehaviorConfig, imagine)
from visual_rl_stack.world_model.behavior.returns import lambda_returns
from visual_rl_stack.world_model.dynamics.rssm import RSSM, RSSMConfig, State

torch.set_num_threads(1)
RSSM_SMALL = RSSMConfig(embed_size=6, action_size=2, deter=16, stoch=4, hidden=16)


def test_lambda_returns_match_a_hand_computed_case():
    rewards = torch.tensor([[1.0], [0.0], [2.0]])
    values = torch.tensor([[0.5], [1.0], [-1.0], [4.0]])
    continues = torch.tensor([[1.0], [0.5], [1.0]])
    gamma, lam = 0.9, 0.5
    r2 = 2.0 + 0.9 * 1.0 * (0.5 * 4.0 + 0.5 * 4.0)
    r1 = 0.0 + 0.9 * 0.5 * (0.5 * -1.0 + 0.5 * r2)
    r0 = 1.0 + 0.9 * 1.0 * (0.5 * 1.0 + 0.5 * r1)
    returns = lambda_returns(rewards, values, continues, gamma, lam)
    assert torch.allclose(returns[:, 0], torch.tensor([r0, r1, r2]))


def test_lambda_zero_is_td_and_one_is_the_bootstrapped_return():
    rewards, values = torch.rand(4, 3), torch.rand(5, 3)
    continues = torch.ones(4, 3)
    td = lambda_returns(rewards, values, continues, 0.9, 0.0)
    assert torch.allclose(td, rewards + 0.9 * values[1:])
    mc = lambda_returns(rewards, values, continues, 0.9, 1.0)
    expected = sum(0.9 ** k * rewards[k] for k in range(4)) + 0.9 ** 4 * values[4]
    assert torch.allclose(mc[0], expected)
    with pytest.raises(ValueError, match='H \\+ 1 values'):
        lambda_returns(rewards, values[:4], continues, 0.9, 0.5)


def test_imagined_rollouts_have_the_horizon_and_actions_stay_in_bounds():
    rssm = RSSM(RSSM_SMALL)
    nets = AgentNets(BehaviorConfig(RSSM_SMALL.feature_size, action_size=2, hidden=16, horizon=6))
    start = rssm.initial(5)
    states, actions, entropies = imagine(rssm, nets.actor, start, 6)
    assert states.deter.shape == (7, 5, 16) and actions.shape == (6, 5, 2)
    assert entropies.shape == (6, 5)
    assert torch.all(actions.abs() < 1.0)
    assert torch.equal(states.deter[0], start.deter)


class ActionEchoDynamics(RSSM):
    """A toy world whose next state holds the last action and pays its first component."""

    def img_step(self, state: State, action: torch.Tensor, sample: bool = True) -> State:
        stoch = torch.cat([action, torch.zeros_like(state.stoch[..., action.shape[-1]:])], -1)
        return State(state.deter, stoch, stoch, torch.ones_like(stoch))

    def predict(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stoch = features[..., self.config.deter:]
        return stoch[..., 0], torch.full(stoch.shape[:-1], 10.0)


def test_actor_learns_what_imagination_pays_and_behaviour_cloning_pulls_to_the_demo():
    torch.manual_seed(0)
    world = ActionEchoDynamics(RSSM_SMALL)
    config = BehaviorConfig(RSSM_SMALL.feature_size, action_size=2, hidden=32, horizon=3,
                            bc_weight=0.0, actor_lr=3e-3)
    learner = ActorCritic(AgentNets(config))
    start = State(*(t.repeat(64, 1) for t in world.initial(1)))
    demo_features = torch.randn(8, RSSM_SMALL.feature_size)
    value_before = float(learner.nets.critic(start.features).mean())
    metrics = [learner.update(world, start, demo_features, torch.zeros(8, 2))
               for _ in range(150)]
    mode = learner.nets.actor.mode(start.features)
    assert float(mode[:, 0].mean()) > 0.8
    assert metrics[-1]['imagined_return'] > metrics[0]['imagined_return'] + 1.0
    # The critic follows the returns up (it bootstraps from a slowly moving copy).
    value = float(learner.nets.critic(start.features).mean())
    assert value > value_before + 2.0 and value < metrics[-1]['imagined_return']
    target = torch.tensor([[0.5, -0.5]]).repeat(8, 1)
    first = learner.bc_update(demo_features, target)
    for _ in range(200):
        last = learner.bc_update(demo_features, target)
    assert last < 0.05 * first


def test_behavior_config_refuses_meaningless_settings():
    with pytest.raises(ValueError, match='horizon'):
        BehaviorConfig(10, horizon=0)
    with pytest.raises(ValueError, match='init_std'):
        BehaviorConfig(10, min_std=2.0)
