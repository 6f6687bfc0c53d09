"""Multi-view synchroniser: complete sets, tolerance, missing views, bounded queues."""

import pytest
from visual_rl_stack.perception.sync import MultiViewSynchronizer

VIEWS = ['front', 'side', 'wrist']
STREAMS = ['color', 'depth']


def add_frame(sync, stamp, views=VIEWS, offsets=None):
    """Add every stream of ``views`` at ``stamp`` (+ per-view offset); return the last result."""
    result = None
    for view in views:
        for stream in STREAMS:
            stamp_s = stamp + (offsets or {}).get(view, 0.0)
            result = sync.add(view, stream, stamp_s, f'{view}/{stream}@{stamp_s:.3f}')
    return result


def test_complete_set_within_tolerance_is_returned_once():
    sync = MultiViewSynchronizer(VIEWS, STREAMS, tolerance_s=0.02, queue_size=5)
    synced = add_frame(sync, 1.0, offsets={'side': 0.01, 'wrist': -0.005})
    assert synced is not None
    assert synced.stamp_s == pytest.approx(1.01)
    assert synced.newest[0] == 'side'
    assert synced.item('wrist', 'depth') == 'wrist/depth@0.995'
    assert set(synced.items) == {(v, s) for v in VIEWS for s in STREAMS}
    assert sync.stats.emitted == 1
    assert sync.add('front', 'color', 1.0, 'again') is None
    assert sync.stats.late['front'] == 1


def test_stamps_out_of_tolerance_do_not_form_a_set():
    sync = MultiViewSynchronizer(VIEWS, STREAMS, tolerance_s=0.02, queue_size=5)
    assert add_frame(sync, 1.0, offsets={'wrist': 0.05}) is None
    assert sync.stats.emitted == 0


def test_newest_complete_set_wins_and_older_partial_set_is_reported():
    sync = MultiViewSynchronizer(VIEWS, STREAMS, tolerance_s=0.02, queue_size=5)
    assert add_frame(sync, 1.0, views=['front', 'side']) is None
    synced = add_frame(sync, 2.0)
    assert synced is not None and synced.stamp_s == 2.0
    assert synced.item('front', 'color') == 'front/color@2.000'
    dropped = sync.pop_dropped()
    assert len(dropped) == 1
    assert dropped[0].stamp_s == 1.0
    assert dropped[0].missing == {'wrist': ('color', 'depth')}
    assert dropped[0].reason == 'superseded'
    assert sync.stats.dropped_sets == 1
    assert sync.pop_dropped() == []


def test_missing_view_times_out_and_is_named():
    sync = MultiViewSynchronizer(VIEWS, STREAMS, tolerance_s=0.02, queue_size=5,
                                 max_delay_s=0.25)
    for step in range(5):
        assert add_frame(sync, 1.0 + 0.1 * step, views=['front', 'side']) is None
    dropped = sync.pop_dropped()
    assert [round(d.stamp_s, 3) for d in dropped] == [1.0, 1.1]
    assert all(d.missing == {'wrist': ('color', 'depth')} and d.reason == 'timeout'
               for d in dropped)
    # A message for a given-up set is late, and counted against its view.
    assert sync.add('wrist', 'color', 1.0, 'too late') is None
    assert sync.stats.late['wrist'] == 1


def test_queues_stay_bounded():
    sync = MultiViewSynchronizer(['a', 'b'], ['color'], tolerance_s=0.001, queue_size=3)
    for step in range(50):
        sync.add('a', 'color', float(step), step)
    assert sync.stats.overflow == 47
    assert sync.add('b', 'color', 46.0, 'pushed out') is None
    assert sync.add('b', 'color', 47.0, 'kept').item('a', 'color') == 47


def test_out_of_order_arrival_still_matches():
    sync = MultiViewSynchronizer(['a', 'b'], ['color'], tolerance_s=0.01, queue_size=5)
    sync.add('a', 'color', 2.0, 'a2')
    sync.add('a', 'color', 1.0, 'a1')
    synced = sync.add('b', 'color', 1.0, 'b1')
    assert synced is not None and synced.item('a', 'color') == 'a1'


@pytest.mark.parametrize('kwargs, text', [
    ({'views': []}, 'views'),
    ({'views': ['a', 'a']}, 'distinct'),
    ({'tolerance_s': -0.1}, 'tolerance_s'),
    ({'queue_size': 0}, 'queue_size'),
    ({'max_delay_s': 0.001}, 'max_delay_s'),
])
def test_bad_configuration_is_rejected(kwargs, text):
    args = {'views': VIEWS, 'streams': STREAMS, 'tolerance_s': 0.02, 'queue_size': 5, **kwargs}
    with pytest.raises(ValueError, match=text):
        MultiViewSynchronizer(**args)


def test_unknown_stream_is_a_key_error():
    sync = MultiViewSynchronizer(VIEWS, STREAMS, tolerance_s=0.02, queue_size=5)
    with pytest.raises(KeyError, match='unknown stream'):
        sync.add('rear', 'color', 1.0, None)
