"""The keypoint affordance model: labels, instructions, training, the backend and the CLI."""

import json

import numpy as np
import pytest
from visual_rl_stack.cli.main import main
from visual_rl_stack.vlm_affordance.accuracy import evaluate_affordance
from visual_rl_stack.vlm_affordance.affordance import Affordance
from visual_rl_stack.vlm_affordance.backends import open_backend
from visual_rl_stack.vlm_affordance.keypoint_model.config import KeypointTrainSettings
from visual_rl_stack.vlm_affordance.keypoint_model.data import labels
from visual_rl_stack.vlm_affordance.keypoint_model.language import (
    build_tokenizer, encode, Instruction)
from visual_rl_stack.vlm_affordance.keypoint_model.scene import project, SceneMaker, top_points
from visual_rl_stack.vlm_affordance.keypoint_model.train import train_keypoints
from visual_rl_stack.vlm_affordance.lifting import lift_pixel
from visual_rl_stack.vlm_affordance.prompting import build_prompt

SUMMARY_KEYS = {'task', 'backend', 'episodes', 'median_error_m', 'within_2cm', 'latency_ms',
                'per_episode'}


@pytest.fixture(scope='module')
def maker():
    """Yield a scene maker with randomisation on, shared by the module."""
    scenes = SceneMaker()
    yield scenes
    scenes.close()


def test_labels_project_onto_the_privileged_points(maker):
    scene = maker.make('stack3', 1001)
    for role, point in top_points('stack3', scene.state).items():
        for frame in scene.frames.values():
            u, v, depth = project(frame, point)
            assert depth > 0 and 0 <= u < frame.width and 0 <= v < frame.height
            seen, why = lift_pixel(frame, u, v)  # the depth behind the label pixel (5x5 fit)
            assert seen is not None, why
            assert np.linalg.norm(seen - point) < 0.012, (role, frame.name)


def test_the_instruction_decides_the_labels(maker):
    scene = maker.make('stack', 1002)
    first, second = scene.colors['cube0'], scene.colors['cube1']
    one = Instruction(f'put the {first} cube on the {second} cube', 'cube0', 'cube1')
    other = Instruction(f'put the {second} cube on the {first} cube', 'cube1', 'cube0')
    uv_one, visible, _ = labels(scene, one, 128)
    uv_other, _, _ = labels(scene, other, 128)
    assert visible.all()
    np.testing.assert_allclose(uv_one[:, 0], uv_other[:, 1])
    np.testing.assert_allclose(uv_one[:, 1], uv_other[:, 0])
    assert np.linalg.norm(uv_one[:, 0] - uv_one[:, 1], axis=-1).min() > 3
    texts = [i.text for i in scene.instructions()]
    assert texts[0] == f'stack the {second} cube on the {first} cube'  # the task's phrasing
    tokenizer = build_tokenizer(texts)
    assert encode(tokenizer, one.text, 12) != encode(tokenizer, other.text, 12)
    assert encode(tokenizer, 'put the zebra cube', 4)[2] == 1  # unknown words are [UNK]


def test_a_tiny_model_trains_and_answers_in_original_pixels(tmp_path, maker):
    settings = KeypointTrainSettings(tasks=('lift',), episodes=2, val_episodes=1,
                                     instructions=2, steps=3, batch_size=2, workers=1,
                                     log_every=1, val_every=2)
    checkpoint = train_keypoints(settings, tmp_path / 'run', progress=False)
    for name in ('metrics.jsonl', 'loss.png', 'validation.png', 'summary.json'):
        assert (tmp_path / 'run' / name).is_file(), name
    assert (checkpoint / 'tokenizer.json').is_file()
    rows = (tmp_path / 'run' / 'metrics.jsonl').read_text().splitlines()
    assert [json.loads(row)['step'] for row in rows] == [1, 2, 3, 3]
    assert list((tmp_path / 'run' / 'tensorboard').glob('events.out.tfevents.*'))
    assert 'machine' in json.loads((tmp_path / 'run' / 'summary.json').read_text())
    with pytest.raises(ValueError, match='already holds a training run; choose a new --out'):
        train_keypoints(settings, tmp_path / 'run', progress=False)
    backend = open_backend('keypoint_net', str(tmp_path / 'run'), refine=False)
    scene = maker.make('lift', 1003)
    prompt = build_prompt(scene.frames, 'pick up the red cube')
    assert prompt.images['front'].shape[0] == 512  # the model answers on the upscaled image
    predicted = backend.predict(prompt)
    affordance = backend.parse(backend.ask(prompt, 0), prompt)
    assert isinstance(affordance, Affordance) and affordance.backend == 'keypoint_net'
    for name in ('grasp', 'target'):
        kp, best = affordance.keypoints[name], predicted[name][0]
        assert kp.view == best['view']
        assert kp.u == pytest.approx(best['u'], abs=0.01)
        assert kp.v == pytest.approx(best['v'], abs=0.01)
        assert 0 <= kp.u < 128 and 0 <= kp.v < 128


def test_the_shipped_model_grasps_lift_cubes_within_2cm():
    backend = open_backend('keypoint_net')
    result = evaluate_affordance(backend, 'lift', 3, 1000)
    assert result['within_2cm'] == 1.0, [r['grasp_error_m'] for r in result['per_episode']]


def test_cli_writes_the_documented_json(tmp_path, capsys):
    out = tmp_path / 'lift.json'
    assert main(['affordance', '--task', 'lift', '--episodes', '2', '--json', str(out),
                 '--save-prompts', str(tmp_path / 'prompts'), '--no-progress']) == 0
    result = json.loads(out.read_text())
    assert SUMMARY_KEYS <= set(result) and result['episodes'] == 2
    episode = result['per_episode'][0]
    assert {'grasp', 'target'} <= set(episode['keypoints'])
    assert {'u', 'v', 'view', 'world'} <= set(episode['keypoints']['grasp'])
    assert 'grasp_error_m' in episode
    assert (tmp_path / 'prompts' / 'lift_1000' / 'prompt.json').is_file()
    assert json.loads(capsys.readouterr().out)['task'] == 'lift'
