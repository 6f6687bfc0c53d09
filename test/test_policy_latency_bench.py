"""``vrl bench policy``: structure of the latency report (timings are never asserted)."""

import argparse
from functools import partial
import json
from pathlib import Path

import pytest
from visual_rl_stack.cli.commands import bench as bench_command
from visual_rl_stack.residual_policy.diffusion_bc import latency_bench
from visual_rl_stack.residual_policy.diffusion_bc.model.config import DiffusionPolicyConfig

TINY = {'action_dim': 2, 'n_obs_steps': 1, 'horizon': 8, 'n_action_steps': 4,
        'down_dims': (8, 16), 'step_embed_dim': 8, 'n_groups': 4}


def _state_config() -> DiffusionPolicyConfig:
    return DiffusionPolicyConfig(obs_mode='state', state_dim=3, **TINY)


def _image_config() -> DiffusionPolicyConfig:
    return DiffusionPolicyConfig(obs_mode='image', views=('front',), image_size=(16, 16),
                                 image_channels=(8,), num_keypoints=4, image_feature_dim=8,
                                 **TINY)


def _check_policy_row(row: dict, ddim_steps: tuple, chunks: int) -> None:
    assert row['parameters'] > 0
    assert row['n_action_steps'] == TINY['n_action_steps']
    assert sorted(row['ddim']) == sorted(str(s) for s in ddim_steps)
    for ms in row['ddim'].values():
        assert ms['chunks'] == chunks
        for key in ('chunk_median_ms', 'chunk_p99_ms', 'chunk_mean_ms', 'per_step_amortised_ms'):
            assert ms[key] > 0
        assert ms['chunk_p99_ms'] >= ms['chunk_median_ms']
        assert ms['per_step_amortised_ms'] == pytest.approx(
            ms['chunk_mean_ms'] / TINY['n_action_steps'])


def test_random_init_report_has_both_policies_and_is_json_ready() -> None:
    result = latency_bench.policy_latency(ddim_steps=(1, 2), chunks=2, warmup=1,
                                          state_config=_state_config(),
                                          image_config=_image_config())
    json.dumps(result)
    assert result['device'] == 'cpu' and result['torch_threads'] >= 1
    assert result['ddim_steps'] == [1, 2] and result['chunks'] == 2
    for name, mode in (('state', 'state'), ('image', 'image')):
        assert result[name]['weights'] == 'random-init' and result[name]['run'] is None
        assert result[name]['obs_mode'] == mode
        _check_policy_row(result[name], (1, 2), 2)
    assert result['lerobot'] == {'available': False, 'reason': latency_bench.LEROBOT_REASON}


def test_a_saved_checkpoint_is_loaded_instead_of_random_weights(tmp_path: Path) -> None:
    latency_bench.random_init_policy(_state_config()).save(tmp_path / 'checkpoint')
    result = latency_bench.policy_latency(state_run=tmp_path, ddim_steps=(2,), chunks=2,
                                          warmup=0, image_config=_image_config())
    assert result['state']['weights'] == 'checkpoint'
    assert result['state']['run'] == str(tmp_path / 'checkpoint')
    assert result['state']['state_dim'] == 3
    _check_policy_row(result['state'], (2,), 2)


def test_bench_policy_cli_writes_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(latency_bench, 'default_state_config', _state_config)
    monkeypatch.setattr(latency_bench, 'default_image_config', _image_config)
    monkeypatch.setattr(latency_bench, 'policy_latency',
                        partial(latency_bench.policy_latency, ddim_steps=(2,), warmup=0))
    parser = argparse.ArgumentParser()
    bench_command.add_arguments(parser)
    out = tmp_path / 'bench.json'
    args = parser.parse_args(['policy', '--chunks', '2', '--json', str(out)])
    assert bench_command.main(args) == 0
    report = json.loads(out.read_text())
    assert set(report) == {'machine', 'args', 'policy'}
    assert report['args']['chunks'] == 2
    assert report['policy']['image']['weights'] == 'random-init'
    _check_policy_row(report['policy']['state'], (2,), 2)
