"""Every shipped model still scores, on a few of its card's seeds, like its card says."""

from math import comb

import pytest
from visual_rl_stack.core.policy import policy_kind, PolicyOptions
from visual_rl_stack.core.shipped_models import shipped_models
from visual_rl_stack.evaluation.episodes import evaluate
from visual_rl_stack.vlm_affordance.accuracy import evaluate_affordance
from visual_rl_stack.vlm_affordance.backends import open_backend

EPISODES = 5
#: A model fails the smoke test when a result this far out would happen once in 1000 runs.
SIGNIFICANCE = 1e-3
MODELS = shipped_models()
POLICIES = sorted(name for name, model in MODELS.items() if model.is_policy)
AFFORDANCE_MODELS = sorted(name for name, model in MODELS.items() if not model.is_policy)


def two_sided_binomial_p(successes: int, episodes: int, rate: float) -> float:
    """Return the probability of an outcome at most as likely as ``successes`` at ``rate``."""
    probabilities = [comb(episodes, k) * rate ** k * (1 - rate) ** (episodes - k)
                     for k in range(episodes + 1)]
    observed = probabilities[successes]
    return sum(p for p in probabilities if p <= observed * (1 + 1e-9))


def test_the_significance_check_can_fail():
    assert two_sided_binomial_p(0, EPISODES, 0.94) < SIGNIFICANCE
    assert two_sided_binomial_p(5, EPISODES, 0.08) < SIGNIFICANCE
    assert two_sided_binomial_p(5, EPISODES, 0.94) > 0.5


def test_models_are_shipped():
    assert len(MODELS) >= 2, sorted(MODELS)


@pytest.mark.slow
@pytest.mark.parametrize('name', POLICIES)
def test_shipped_model_scores_close_to_its_card(name):
    card = MODELS[name].card
    assert policy_kind(name) == card['kind']
    evaluation = card['evaluation']
    result = evaluate(card['task'], name, EPISODES, evaluation['seed_start'], progress=False,
                      options=PolicyOptions(device='cpu'))
    p = two_sided_binomial_p(result['successes'], EPISODES, evaluation['success_rate'])
    assert p >= SIGNIFICANCE, (f'{name}: {result["successes"]}/{EPISODES} on seeds from '
                               f'{evaluation["seed_start"]}, card says '
                               f'{evaluation["success_rate"]:.0%} (p={p:.2g})')


@pytest.mark.slow
@pytest.mark.parametrize('name', AFFORDANCE_MODELS)
def test_shipped_affordance_model_locates_grasps_like_its_card(name):
    card = MODELS[name].card
    backend = open_backend(card['backend'], name)
    for task, measured in sorted(card['evaluation']['per_task'].items()):
        result = evaluate_affordance(backend, task, EPISODES, measured['seed_start'])
        within = round(result['within_2cm'] * EPISODES)
        p = two_sided_binomial_p(within, EPISODES, min(measured['within_2cm'], 0.999))
        assert p >= SIGNIFICANCE, (f'{name} on {task}: grasp within 2 cm in {within}/'
                                   f'{EPISODES}, card says {measured["within_2cm"]:.0%}')
