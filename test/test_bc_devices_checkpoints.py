"""Device choice and generic checkpoint folders (atomic write, refusal with a reason)."""

from contextlib import nullcontext
import json
import threading

import pytest
import torch
from torch import nn
from visual_rl_stack.core.checkpoints import load_checkpoint, save_checkpoint
from visual_rl_stack.core.devices import (autocast_context, limit_callback_torch,
                                          limit_thread_torch, maybe_compile, resolve_device)


def test_resolve_device_auto_cpu_and_bad_names():
    expected = 'cuda' if torch.cuda.is_available() else 'cpu'
    assert resolve_device('auto').type == expected
    assert resolve_device('cpu') == torch.device('cpu')
    with pytest.raises(ValueError, match='unknown device'):
        resolve_device('tpu')
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match='CUDA is not available'):
            resolve_device('cuda:0')


def test_limit_thread_torch_leaves_the_other_threads_alone():
    before = torch.get_num_threads()
    seen = []

    def worker() -> None:
        limit_thread_torch(1)
        torch.ones(64, 64) @ torch.ones(64, 64)
        seen.append(torch.get_num_threads())

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [1]
    assert torch.get_num_threads() == before


def test_a_callback_limit_applies_on_each_thread_it_runs_on():
    before = torch.get_num_threads()
    seen = []

    def callback(threads: int) -> None:
        limit_callback_torch(threads)
        seen.append(torch.get_num_threads())

    def spin(*settings: int) -> None:
        thread = threading.Thread(target=lambda: [callback(t) for t in settings])
        thread.start()
        thread.join()

    spin(1, 1, 2)  # an executor thread; the node's setting changed
    spin(1)  # the next executor's thread: set again there
    assert seen == [1, 1, 2, 1]
    assert torch.get_num_threads() == before


def test_cpu_gets_no_autocast_and_no_compile():
    cpu = torch.device('cpu')
    assert isinstance(autocast_context(cpu), nullcontext)
    module = nn.Linear(2, 2)
    assert maybe_compile(module, cpu, enabled=True) is module


def _build(config: dict, normalization: dict) -> nn.Module:
    return nn.Sequential(nn.Linear(config['inputs'], config['hidden']), nn.ReLU(),
                         nn.Linear(config['hidden'], 1))


def test_round_trip_and_overwrite_leave_no_temporary_folders(tmp_path):
    torch.manual_seed(0)
    model = _build({'inputs': 3, 'hidden': 8}, {})
    path = tmp_path / 'ckpt'
    for _ in range(2):  # the second save replaces the first
        save_checkpoint(path, model, {'inputs': 3, 'hidden': 8}, {'x': [1.0]}, kind='mlp')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['ckpt']
    loaded = load_checkpoint(path, _build, kind='mlp')
    probe = torch.randn(4, 3)
    assert torch.equal(loaded(probe), model(probe))


def test_mismatches_are_refused_with_the_reason(tmp_path):
    model = _build({'inputs': 3, 'hidden': 8}, {})
    path = tmp_path / 'ckpt'
    save_checkpoint(path, model, {'inputs': 3, 'hidden': 8}, {}, kind='mlp')
    with pytest.raises(ValueError, match="'mlp' model, not a 'policy'"):
        load_checkpoint(path, _build, kind='policy')
    wrong = lambda config, norm: _build({'inputs': 4, 'hidden': 8}, norm)  # noqa: E731
    with pytest.raises(ValueError, match=r'shape mismatch for 0.weight: checkpoint \(8, 3\)'):
        load_checkpoint(path, wrong)
    deeper = lambda config, norm: nn.Sequential(_build(config, norm))  # noqa: E731
    with pytest.raises(ValueError, match='missing keys 0.0.bias.*unexpected keys 0.bias'):
        load_checkpoint(path, deeper)
    envelope = json.loads((path / 'config.json').read_text())
    (path / 'config.json').write_text(json.dumps({**envelope, 'format_version': 99}))
    with pytest.raises(ValueError, match='format version 99'):
        load_checkpoint(path, _build)
    (path / 'model.safetensors').unlink()
    with pytest.raises(ValueError, match='missing model.safetensors'):
        load_checkpoint(path, _build)
