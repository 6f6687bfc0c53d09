"""Observation encoders: shapes, crop augmentation only in training, shared vs per-view trunks."""

import pytest
import torch
from visual_rl_stack.residual_policy.diffusion_bc.model.encoders import (crop_images,
                                                                         MultiViewImageEncoder,
                                                                         ObservationEncoder,
                                                                         StateEncoder)


def _images(batch: int = 2, views: int = 3, size: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (batch, views, size, size, 3), dtype=torch.uint8)


def test_image_encoder_output_shape_for_uint8_and_float():
    encoder = MultiViewImageEncoder(num_views=3, image_size=(32, 32), feature_dim=16)
    images = _images()
    assert encoder(images).shape == (2, 48)
    assert encoder(images.float() / 255).shape == (2, 48)


def test_random_crop_only_in_training_mode():
    torch.manual_seed(0)
    encoder = MultiViewImageEncoder(num_views=1, image_size=(32, 32), crop_fraction=0.75)
    images = _images(views=1)
    encoder.eval()
    assert torch.equal(encoder(images), encoder(images))
    encoder.train()
    assert not torch.equal(encoder(images), encoder(images))


def test_crop_windows_are_sub_images():
    images = torch.arange(2 * 8 * 8, dtype=torch.float32).reshape(2, 1, 8, 8)
    centre = crop_images(images, (4, 4), random=False)
    assert torch.equal(centre, images[:, :, 2:6, 2:6])
    cropped = crop_images(images, (4, 4), random=True)
    for n in range(2):
        top, left = divmod(int(cropped[n, 0, 0, 0] - images[n, 0, 0, 0]), 8)
        assert torch.equal(cropped[n], images[n, :, top:top + 4, left:left + 4])


def test_per_view_trunks_have_views_times_shared_parameters():
    def count(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    shared = MultiViewImageEncoder(num_views=3, image_size=(32, 32), shared=True)
    per_view = MultiViewImageEncoder(num_views=3, image_size=(32, 32), shared=False)
    assert count(per_view) == 3 * count(shared)
    assert shared(_images()).shape == per_view(_images()).shape


@pytest.mark.parametrize('mode', ['state', 'image', 'state+image'])
def test_observation_encoder_flattens_over_obs_steps(mode):
    state_encoder = StateEncoder(5, (32,)) if 'state' in mode else None
    image_encoder = (MultiViewImageEncoder(2, (32, 32), feature_dim=16)
                     if 'image' in mode else None)
    encoder = ObservationEncoder(mode, 2, state_encoder, image_encoder)
    features = encoder(torch.randn(4, 2, 5), torch.randint(0, 256, (4, 2, 2, 32, 32, 3),
                                                           dtype=torch.uint8))
    per_step = (32 if state_encoder else 0) + (32 if image_encoder else 0)
    assert features.shape == (4, 2 * per_step) and encoder.output_dim == 2 * per_step


def test_observation_encoder_refuses_wrong_obs_steps_and_missing_inputs():
    encoder = ObservationEncoder('state', 2, StateEncoder(5), None)
    with pytest.raises(ValueError, match=r'\(B, 2'):
        encoder(torch.randn(4, 1, 5))
    with pytest.raises(ValueError, match="'state'"):
        encoder(None)
