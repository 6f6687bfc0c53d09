"""Expert collection into bags, the dataset reader, its cache and open-loop replay."""

import json

import numpy as np
import pytest
from visual_rl_stack.data.collect import collect, sim_config
from visual_rl_stack.data.dataset import BagDataset
from visual_rl_stack.sim.experts import make_expert
from visual_rl_stack.sim.scene import TabletopSim

TASK = 'lift'
VIEWS = ('front', 'wrist')


@pytest.fixture(scope='module')
def demos(tmp_path_factory):
    """Collect two small lift episodes once for every test here."""
    out = tmp_path_factory.mktemp('demos')
    collect(TASK, 2, out, seed_start=3, views=VIEWS, width=32, height=24)
    return out


def expert_actions(seed: int) -> list:
    """Run the expert without recording and return its actions."""
    sim = TabletopSim(sim_config(TASK, (), 'delta', 32, 24))
    try:
        sim.reset(seed=seed)
        expert = make_expert(TASK, 'delta', 0.0, np.random.default_rng(seed))
        actions, result = [], None
        while result is None or not (result.terminated or result.truncated):
            actions.append(expert.act(sim))
            result = sim.step(actions[-1])
        return actions
    finally:
        sim.close()


def replay(seed: int, actions: np.ndarray) -> bool:
    """Replay actions open loop on a seed; return whether the task was solved."""
    sim = TabletopSim(sim_config(TASK, (), 'delta', 32, 24))
    try:
        sim.reset(seed=seed)
        return any(sim.step(action).success for action in actions)
    finally:
        sim.close()


def test_collect_writes_bags_and_index(demos):
    index = json.loads((demos / 'index.json').read_text())
    assert index['task'] == TASK and index['views'] == list(VIEWS)
    assert [e['seed'] for e in index['episodes']] == [3, 4]
    assert all(e['success'] and not e['interrupted'] for e in index['episodes'])
    assert all((demos / e['bag'] / 'metadata.yaml').is_file() for e in index['episodes'])


def test_dataset_aligns_actions_that_reproduce_the_expert(demos):
    dataset = BagDataset(demos)
    assert len(dataset) == 2
    for seed, episode in zip((3, 4), dataset.episodes()):
        expected = np.array(expert_actions(seed))
        np.testing.assert_allclose(episode.action, expected, rtol=1e-12, atol=1e-15)
        assert episode.succeeded and episode.success.sum() == 1
        assert episode.images['front'].shape == (len(episode), 24, 32, 3)
        assert episode.depth['wrist'].dtype == np.float32
        assert episode.state.shape[1] == sum(size for _, size in episode.state_labels)
        assert episode.instruction
        assert replay(seed, episode.action)
    arrays = dataset.arrays()
    steps = sum(map(len, dataset.episodes()))
    assert arrays['state'].shape[0] == arrays['action'].shape[0] == steps


def test_noisy_demonstrations_are_labelled_with_the_clean_expert_action(tmp_path):
    """DART: the bag executes noisy commands, the dataset learns the expert's intent."""
    collect(TASK, 1, tmp_path, seed_start=5, views=('front',), width=32, height=24, noise=0.2)
    episode = BagDataset(tmp_path).episode(0)
    sim = TabletopSim(sim_config(TASK, (), 'delta', 32, 24))
    try:
        sim.reset(seed=5)
        expert = make_expert(TASK, 'delta', 0.2, np.random.default_rng(5))
        executed, clean = [], []
        for _ in range(len(episode)):
            executed.append(expert.act(sim))
            clean.append(expert.clean_action)
            sim.step(executed[-1])
    finally:
        sim.close()
    np.testing.assert_allclose(episode.action, np.array(clean), rtol=1e-9, atol=1e-12)
    assert np.abs(np.array(executed) - np.array(clean))[:, :3].max() > 1e-3


def test_cache_is_used_the_second_time(demos):
    first = BagDataset(demos, views=['front'])
    cached = sorted((demos / '.cache').glob('*.npz'))
    mtimes = [p.stat().st_mtime_ns for p in cached]
    second = BagDataset(demos, views=['front'])
    assert second.decoded == [] and len(cached) == 2
    assert [p.stat().st_mtime_ns for p in cached] == mtimes
    assert list(second.episode(0).images) == ['front']
    np.testing.assert_array_equal(second.episode(1).action, first.episode(1).action)
    assert len(BagDataset(demos, cache=False).decoded) == 2


def test_unknown_view_is_a_clear_error(demos):
    with pytest.raises(ValueError, match='no camera views'):
        BagDataset(demos, views=['ceiling']).episode(0)
