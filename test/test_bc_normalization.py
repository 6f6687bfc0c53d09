"""Min-max normalisation maps to [-1, 1], round-trips, and keeps constant dimensions sane."""

import json

import numpy as np
import pytest
import torch
from visual_rl_stack.residual_policy.diffusion_bc.model.normalization import MinMaxNormalizer


def _data() -> np.ndarray:
    rng = np.random.default_rng(0)
    data = rng.uniform([-5.0, 0.0, 2.0], [5.0, 0.001, 2.0], size=(100, 4, 3))
    data[..., 2] = 2.0  # constant dimension
    return data


def test_fit_maps_range_to_unit_interval_and_constants_to_zero():
    data = _data()
    norm = MinMaxNormalizer.fit(data)
    scaled = norm.normalize(data)
    assert np.allclose(scaled[..., :2].min(axis=(0, 1)), -1, atol=1e-5)
    assert np.allclose(scaled[..., :2].max(axis=(0, 1)), 1, atol=1e-5)
    assert np.all(scaled[..., 2] == 0)


def test_round_trip_numpy_and_torch_including_constant_dim():
    data = _data()
    norm = MinMaxNormalizer.fit(data)
    assert np.allclose(norm.denormalize(norm.normalize(data)), data, atol=1e-4)
    tensor = torch.as_tensor(data, dtype=torch.float32)
    back = norm.denormalize(norm.normalize(tensor))
    assert back.dtype == torch.float32
    assert torch.allclose(back, tensor, atol=1e-4)
    assert torch.all(norm.denormalize(torch.full((2, 3), 0.7))[:, 2] == 2.0)


def test_json_round_trip_gives_same_mapping():
    norm = MinMaxNormalizer.fit(_data())
    again = MinMaxNormalizer.from_dict(json.loads(json.dumps(norm.to_dict())))
    probe = np.linspace(-6, 6, 30).reshape(10, 3)
    assert np.array_equal(again.normalize(probe), norm.normalize(probe))


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match='NaN'):
        MinMaxNormalizer.fit(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match='last dimension 3'):
        MinMaxNormalizer.fit(_data()).normalize(np.zeros((2, 4)))
