"""``vrl replay-eval`` end to end on bags collected here, bad bags and a stop included."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from rosbags.rosbag2 import Writer
from std_msgs.msg import String
from visual_rl_stack.core.policy import open_policy, PolicyOptions
from visual_rl_stack.data.bags import find_bags, read_messages, serialize, typestore
from visual_rl_stack.data.collect import collect
from visual_rl_stack.data.dataset import decode_episode
from visual_rl_stack.data.recorder import BagRecorder
from visual_rl_stack.evaluation.replay.evaluate import replay_evaluate
from visual_rl_stack.evaluation.replay.recorded import read_recorded
from visual_rl_stack.evaluation.replay.session import plan_components, ReplaySettings
from visual_rl_stack.ros import topics

VIEWS = ('front', 'side', 'wrist')


@pytest.fixture(scope='module')
def bags(tmp_path_factory):
    """Two lift episodes, a push episode, a truncated bag and one without control steps."""
    folder = tmp_path_factory.mktemp('replay_bags')
    collect('lift', 2, folder, seed_start=7, views=VIEWS, width=64, height=64)
    push = collect('push', 1, tmp_path_factory.mktemp('push'), seed_start=7, views=VIEWS,
                   width=64, height=64)
    shutil.copytree(find_bags(push)[0], folder / 'push_seed0007')
    lift = find_bags(folder)[0]
    truncated = folder / 'lift_truncated'
    shutil.copytree(lift, truncated)
    for mcap in truncated.glob('*.mcap'):
        mcap.write_bytes(mcap.read_bytes()[:mcap.stat().st_size // 3])
    writer = Writer(folder / 'no_steps', version=8)
    writer.open()
    connection = writer.add_connection(topics.TASK_INSTRUCTION, 'std_msgs/msg/String',
                                       typestore=typestore())
    writer.write(connection, 0, serialize(String(data='lift the red cube')))
    writer.close()
    return folder


@pytest.fixture(scope='module')
def report(bags, tmp_path_factory):
    """Replay the folder with the shipped lift policy, the affordance and the stage timeline."""
    out = tmp_path_factory.mktemp('replay_out')
    settings = ReplaySettings(policy='bc_state_lift', affordance='keypoint_net',
                              world_model='stages', step_timeout=15.0, query_every=5)
    document = replay_evaluate(bags, settings, out, progress=False, command='test')
    return out, document


def _episode(document, name):
    return next(e for e in document['episodes'] if e['episode'] == name)


def test_recorded_reference_matches_the_data_set(bags):
    bag = bags / 'lift_seed0007'
    recorded, episode = read_recorded(bag), decode_episode(bag)
    assert recorded.task == 'lift' and recorded.action_mode == 'delta'
    assert recorded.views == list(VIEWS) and recorded.image_size == (64, 64)
    assert recorded.state_labels == episode.state_labels
    # The data set drops the final observation, which has no command after it.
    assert np.allclose(recorded.action[:len(episode)], episode.action)
    assert np.isnan(recorded.action[-1]).all()
    assert recorded.succeeded == episode.succeeded


def test_every_step_is_answered_and_scored(report):
    _, document = report
    for name in ('lift_seed0007', 'lift_seed0008'):
        episode = _episode(document, name)
        policy = episode['policy']
        assert policy['answered_steps'] == episode['steps']
        assert policy['translation']['n'] == episode['steps'] - 1  # the last step has no command
        assert policy['translation']['mean'] < 0.02  # a shipped policy on its own task
        assert 0.0 <= policy['intervention_fraction'] <= 1.0
        assert policy['chunk_latency_ms']['chunks'] >= 1
        assert episode['speed'] > 0 and episode['wall_s'] > 0
        assert episode['affordance']['answers'] >= 2  # the start and a re-query
        assert episode['world_model']['stages'][0][1].startswith('1 ')
        assert episode['missed_steps'] == {}, episode['notes']


def test_bad_bags_are_reported_and_the_rest_is_evaluated(report):
    _, document = report
    assert 'truncated or corrupt' in _episode(document, 'lift_truncated')['error']
    assert '/joint_states' in _episode(document, 'no_steps')['error']
    push = _episode(document, 'push_seed0007')
    assert "trained on 'lift'" in push['skipped']['policy']
    assert 'affordance' in push and 'world_model' in push  # what does not need the policy runs
    summary = document['summary']
    assert summary['episodes'] == 5 and summary['replayed'] == 3
    assert sorted(summary['failed']) == ['lift_truncated', 'no_steps']


def test_report_files_hold_the_numbers_of_the_json(report):
    out, document = report
    saved = json.loads((out / 'summary.json').read_text())
    assert saved['summary'] == json.loads(json.dumps(document['summary']))
    markdown = (out / 'report.md').read_text()
    page = (out / 'index.html').read_text()
    episode = _episode(saved, 'lift_seed0007')
    cell = f'{episode["policy"]["translation"]["mean"] * 1000:.1f}'
    row = next(line for line in markdown.splitlines() if line.startswith('| lift_seed0007'))
    assert cell in row and cell in page
    pooled = saved['summary']['policy']['translation']['mean'] * 1000
    assert f'translation {pooled:.1f} /' in markdown
    for plot in ('action_error.png', 'timelines.png', 'keyframes.png'):
        path = out / 'episodes' / 'lift_seed0007' / plot
        assert path.is_file() and path.stat().st_size > 1000
        assert f'episodes/lift_seed0007/{plot}' in markdown and plot in page
    assert 'truncated or corrupt' in markdown and 'truncated or corrupt' in page


def test_mismatched_cameras_and_observations_are_named(bags, tmp_path):
    front_only = collect('lift', 1, tmp_path, seed_start=9, views=('front',), width=64,
                         height=64)
    episode = read_recorded(find_bags(front_only)[0])
    image_policy = open_policy('bc_image_lift', PolicyOptions(device='cpu'))
    settings = ReplaySettings(policy='bc_image_lift', affordance='keypoint_net',
                              world_model='stages')
    components = plan_components(episode, settings, image_policy)
    assert not components.policy and "no ['wrist']" in components.skipped['policy']
    assert not components.affordance and 'side' in components.skipped['affordance']
    assert components.world_model
    push = read_recorded(bags / 'push_seed0007')
    state_policy = open_policy('bc_state_lift', PolicyOptions(device='cpu'))
    push.task = None  # a bag whose task cannot be told: the observation layout decides
    problem = plan_components(push, ReplaySettings(policy='x'), state_policy).skipped['policy']
    assert 'observation' in problem and 'cube_position[3]' in problem


def test_a_bag_without_task_state_leaves_out_what_needs_it(bags, tmp_path):
    stripped = tmp_path / 'no_task_state'
    with BagRecorder(stripped) as recorder:
        for message in read_messages(bags / 'lift_seed0007'):
            if message.topic != topics.TASK_STATE:
                recorder.write(message.topic, message.msgtype, message.data, message.log_time)
    episode = read_recorded(stripped)
    assert episode.task is None and episode.action_mode == 'delta'
    policy = open_policy('bc_state_lift', PolicyOptions(device='cpu'))
    components = plan_components(episode, ReplaySettings(policy='bc_state_lift',
                                                         world_model='stages'), policy)
    assert not components.world_model and '/task/state' in components.skipped['world_model']
    assert not components.policy and 'cube_position' in components.skipped['policy']


def test_a_bag_without_cameras_replays_the_state_policy(bags, tmp_path):
    folder = tmp_path / 'bags'
    with BagRecorder(folder / 'no_cameras') as recorder:
        for message in read_messages(bags / 'lift_seed0008'):
            if message.topic.split('/')[1] not in VIEWS:
                recorder.write(message.topic, message.msgtype, message.data, message.log_time)
    settings = ReplaySettings(policy='bc_state_lift', affordance='keypoint_net',
                              step_timeout=15.0)
    document = replay_evaluate(folder, settings, tmp_path / 'out', progress=False)
    episode = _episode(document, 'no_cameras')
    assert 'cameras' in episode['skipped'] and 'affordance' in episode['skipped']
    assert episode['policy']['answered_steps'] == episode['steps']
    assert (tmp_path / 'out' / 'episodes' / 'no_cameras' / 'action_error.png').is_file()


def test_a_stopped_evaluation_reports_the_finished_episodes(bags, ros_context, tmp_path):
    folder, out = tmp_path / 'bags', tmp_path / 'out'
    for copy in range(10):
        shutil.copytree(bags / 'lift_seed0007', folder / f'lift_copy{copy:02d}')
    env = dict(os.environ, ROS_DOMAIN_ID=str(ros_context.get_domain_id()),
               PYTHONPATH=os.pathsep.join(sys.path))
    process = subprocess.Popen(
        [sys.executable, '-m', 'visual_rl_stack.cli', 'replay-eval', '--bags', str(folder),
         '--policy', 'bc_state_lift', '--out', str(out), '--no-progress'],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 180.0
        while not any(out.glob('episodes/*/*.png')) and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[0]
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, output
    document = json.loads((out / 'summary.json').read_text())
    finished = len(document['episodes'])
    assert 1 <= finished < 10 and document['summary']['failed'] == [], output
    assert f'after {finished} of 10 bags' in document['interrupted']
    assert document['interrupted'] in (out / 'report.md').read_text()


def test_nothing_replayed_exits_non_zero_with_the_reasons(bags, tmp_path, capsys):
    from visual_rl_stack.cli.main import main
    shutil.copytree(bags / 'lift_truncated', tmp_path / 'bad' / 'lift_truncated')
    code = main(['replay-eval', '--bags', str(tmp_path / 'bad'), '--policy', 'bc_state_lift',
                 '--out', str(tmp_path / 'out'), '--no-progress'])
    assert code == 1
    err = capsys.readouterr().err
    assert 'no episode could be replayed' in err and 'truncated or corrupt' in err


def test_a_stop_while_the_nodes_start_reports_instead_of_raising(bags, ros_context, tmp_path):
    # SIGTERM during start-up shuts the context down before the first node exists.
    ros_context.shutdown()
    document = replay_evaluate(bags, ReplaySettings(policy='bc_state_lift'), tmp_path,
                               progress=False, context=ros_context)
    assert document['episodes'] == [] and 'after 0 of' in document['interrupted']
    assert (tmp_path / 'summary.json').is_file()
