"""
View masking plus patch masking, held fixed across a key-horizon (tube masking).

A mask is ``True`` where a token is hidden. Per sample one view is kept, the
others are hidden entirely, and ``patch_ratio`` of the kept view's patches are
hidden at random too: the model must infer the hidden views from what one
camera shows. A clip of frames from one key-horizon shares its sample's mask,
so reconstruction cannot copy a patch from the frame next to it.
"""

import torch


def view_patch_masks(batch: int, views: int, patches: int, patch_ratio: float,
                     generator: torch.Generator) -> torch.Tensor:
    """Return ``batch x views x patches`` masks: one view kept per sample, partly masked."""
    if views < 1 or patches < 1 or batch < 1:
        raise ValueError(f'need batch, views and patches >= 1, got {batch}, {views}, {patches}')
    if not 0.0 <= patch_ratio < 1.0:
        raise ValueError(f'patch_ratio must be in [0, 1), got {patch_ratio}')
    hidden = min(int(round(patch_ratio * patches)), patches - 1)
    masks = torch.ones(batch, views, patches, dtype=torch.bool)
    kept_view = torch.randint(views, (batch,), generator=generator)
    order = torch.rand(batch, patches, generator=generator).argsort(dim=1)
    kept = torch.ones(batch, patches, dtype=torch.bool)
    kept.scatter_(1, order[:, :hidden], False)
    masks[torch.arange(batch), kept_view] = ~kept
    return masks


def tube_masks(masks: torch.Tensor, frames: int) -> torch.Tensor:
    """Return ``batch x frames x views x patches``: each sample's mask on all of its frames."""
    if frames < 1:
        raise ValueError(f'frames must be >= 1, got {frames}')
    return masks.unsqueeze(1).expand(-1, frames, -1, -1)


def visible_count(patches: int, patch_ratio: float) -> int:
    """Return how many tokens a mask of :func:`view_patch_masks` leaves visible (one view's)."""
    return patches - min(int(round(patch_ratio * patches)), patches - 1)
