"""What a new user meets: a corrupt model file and a VLM backend without its model folder."""

import shutil

import pytest
from visual_rl_stack.cli.main import main
from visual_rl_stack.core.shipped_models import resolve_policy
from visual_rl_stack.vlm_affordance.backends import backend_opener, open_backend


@pytest.fixture
def corrupt_policy(tmp_path):
    """Return a copy of the shipped lift BC whose weights were cut short (an interrupted copy)."""
    policy = tmp_path / 'bc'
    shutil.copytree(resolve_policy('bc_state_lift'), policy)
    weights = policy / 'checkpoint' / 'model.safetensors'
    weights.write_bytes(weights.read_bytes()[:1000])
    return policy


def test_a_truncated_weights_file_is_named_not_a_traceback(corrupt_policy, capsys):
    code = main(['eval', '--task', 'lift', '--policy', str(corrupt_policy), '--episodes', '1'])
    err = capsys.readouterr().err
    assert code == 2, err
    assert 'model.safetensors is not a readable safetensors file' in err
    assert 'truncated or corrupt' in err and 'Traceback' not in err


@pytest.mark.parametrize('backend', ['florence2', 'paligemma', 'qwen2_5_vl'])
def test_a_vlm_backend_without_its_model_folder_is_refused_up_front(backend, tmp_path):
    for opener in (open_backend, backend_opener):
        with pytest.raises(ValueError, match='needs a local model folder'):
            opener(backend)
    with pytest.raises(ValueError, match='does not exist'):
        backend_opener(backend, str(tmp_path / 'missing'))


def test_affordance_and_relabel_commands_fail_without_the_model_folder(tmp_path, capsys):
    assert main(['affordance', '--backend', 'florence2', '--task', 'lift']) == 2
    assert main(['relabel', '--backend', 'paligemma', '--bags', str(tmp_path),
                 '--out', str(tmp_path / 'out')]) == 2
    err = capsys.readouterr().err
    assert err.count('needs a local model folder') == 2 and 'Traceback' not in err
    assert not (tmp_path / 'out').exists()
