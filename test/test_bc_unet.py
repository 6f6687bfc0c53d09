"""The conditional 1-D U-Net keeps the chunk's shape and listens to its FiLM condition."""

import pytest
import torch
from visual_rl_stack.residual_policy.diffusion_bc.model.unet1d import ConditionalUnet1D


@pytest.mark.parametrize('horizon', [16, 32])
def test_output_matches_input_shape(horizon):
    torch.manual_seed(0)
    unet = ConditionalUnet1D(action_dim=7, global_cond_dim=10)
    sample = torch.randn(3, horizon, 7)
    out = unet(sample, torch.tensor([0, 50, 99]), torch.randn(3, 10))
    assert out.shape == sample.shape
    assert torch.isfinite(out).all()


def test_resip_size_runs_at_horizon_32_with_about_65m_parameters():
    torch.manual_seed(0)
    unet = ConditionalUnet1D(action_dim=10, global_cond_dim=58, down_dims=(256, 512, 1024),
                             step_embed_dim=256)
    assert 60e6 < sum(p.numel() for p in unet.parameters()) < 70e6
    with torch.inference_mode():
        out = unet(torch.randn(1, 32, 10), torch.tensor(5), torch.randn(1, 58))
    assert out.shape == (1, 32, 10)


def test_horizon_not_divisible_by_levels_is_refused():
    unet = ConditionalUnet1D(action_dim=2, global_cond_dim=3)
    with pytest.raises(ValueError, match='divisible by 4'):
        unet(torch.randn(1, 10, 2), torch.tensor(1), torch.randn(1, 3))


def test_down_dims_must_fit_group_norm():
    with pytest.raises(ValueError, match='divide by 8 groups'):
        ConditionalUnet1D(action_dim=2, global_cond_dim=3, down_dims=(60, 128))


def test_film_condition_changes_output():
    torch.manual_seed(0)
    unet = ConditionalUnet1D(action_dim=4, global_cond_dim=6, down_dims=(32, 64))
    sample, step = torch.randn(1, 16, 4), torch.tensor([10])
    with torch.inference_mode():
        zero = unet(sample, step, torch.zeros(1, 6))
        first = unet(sample, step, torch.randn(1, 6))
        second = unet(sample, step, torch.randn(1, 6))
        other_step = unet(sample, torch.tensor([90]), torch.zeros(1, 6))
    assert (zero - first).abs().max() > 1e-3
    assert (first - second).abs().max() > 1e-3
    assert (zero - other_step).abs().max() > 1e-3
