"""The multi-view MAE: view and tube masks as specified, shapes, and a loss that learns."""

import pytest
import torch
from visual_rl_stack.world_model.mae.masking import tube_masks, view_patch_masks, visible_count
from visual_rl_stack.world_model.mae.model import MAEConfig, MultiViewMAE

torch.set_num_threads(1)
SMALL = MAEConfig(views=('front', 'side', 'wrist'), image_size=32, patch_size=8, width=32,
                  encoder_layers=1, decoder_layers=1, heads=2, stem_channels=(16, 16))


def test_all_views_but_one_are_hidden_and_most_of_that_one_too():
    generator = torch.Generator().manual_seed(0)
    masks = view_patch_masks(64, 3, 16, 0.75, generator)
    assert masks.shape == (64, 3, 16)
    kept_views = (~masks).any(dim=2)
    assert torch.all(kept_views.sum(1) == 1)
    assert visible_count(16, 0.75) == 4
    assert torch.all((~masks).sum((1, 2)) == 4)
    assert len(set(kept_views.float().argmax(1).tolist())) == 3   # each view gets kept sometimes
    assert torch.all((~view_patch_masks(4, 2, 16, 0.99, generator)).sum((1, 2)) == 1)
    with pytest.raises(ValueError, match='patch_ratio'):
        view_patch_masks(1, 3, 16, 1.0, generator)


def test_a_tube_mask_is_the_same_on_every_frame_of_a_clip():
    masks = view_patch_masks(5, 3, 16, 0.75, torch.Generator().manual_seed(1))
    tubes = tube_masks(masks, 4)
    assert tubes.shape == (5, 4, 3, 16)
    assert all(torch.equal(tubes[:, t], masks) for t in range(4))


def test_shapes_patches_round_trip_and_bad_input():
    model = MultiViewMAE(SMALL)
    images = torch.rand(2, 3, 3, 32, 32)
    masks = view_patch_masks(2, 3, SMALL.patches, 0.75, torch.Generator().manual_seed(2))
    pixels, reward = model(images, masks)
    assert pixels.shape == (2, 3, 16, 192) and reward.shape == (2,)
    assert torch.equal(model.unpatchify(model.patchify(images)), images)
    assert model.features(images).shape == (2, model.feature_size) == (2, 3 * 32)
    with pytest.raises(ValueError, match='images must be'):
        model(torch.rand(2, 2, 3, 32, 32), masks)
    with pytest.raises(ValueError, match='patch_size'):
        MAEConfig(image_size=30, patch_size=8)
    assert MAEConfig.from_dict(SMALL.to_dict()) == SMALL


def test_reconstruction_and_reward_losses_fall_on_a_tiny_dataset():
    torch.manual_seed(0)
    model = MultiViewMAE(SMALL)
    # Views that share their content: a colour square whose position sets the reward.
    images, rewards = [], []
    for i in range(16):
        frame = torch.zeros(3, 3, 32, 32)
        x = 2 * i
        frame[:, i % 3, 8:16, x:x + 8] = 1.0
        images.append(frame)
        rewards.append(i / 15)
    images, rewards = torch.stack(images), torch.tensor(rewards)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(3)
    first = None
    for step in range(150):
        masks = view_patch_masks(16, 3, SMALL.patches, 0.5, generator)
        losses = model.losses(images, masks, rewards)
        optimiser.zero_grad()
        losses['loss'].backward()
        optimiser.step()
        first = first or {k: v.item() for k, v in losses.items()}
    assert float(losses['reconstruction']) < 0.5 * first['reconstruction']
    assert float(losses['reward']) < 0.5 * first['reward']
