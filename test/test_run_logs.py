"""The run logs every trainer shares: metrics rows, TensorBoard scalars, summary, resume."""

import json
import os
import signal
import threading
import time

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from visual_rl_stack.core.run_logs import RunLog


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _scalars(run):
    events = EventAccumulator(str(run / 'tensorboard'))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)]
            for tag in events.Tags()['scalars']}


def test_rows_go_to_metrics_and_their_numbers_to_tensorboard(tmp_path):
    with RunLog(tmp_path, 'env_steps', prefix='agent/', skip=('seconds',)) as log:
        log.log({'env_steps': 10, 'seconds': 1.0, 'loss': 0.5, 'note': 'text',
                 'rollout': {'success': 0.25, 'return': None}})
        written = log.write_summary({'best': 0.25})
    assert _rows(tmp_path / 'metrics.jsonl')[0]['rollout'] == {'success': 0.25, 'return': None}
    assert _scalars(tmp_path) == {'agent/loss': [(10, 0.5)],
                                  'agent/rollout/success': [(10, 0.25)]}
    assert json.loads((tmp_path / 'summary.json').read_text()) == written
    assert written['best'] == 0.25 and {'date', 'machine'} <= set(written)


def test_a_resumed_log_drops_what_came_after_the_saved_state(tmp_path):
    with RunLog(tmp_path) as log:
        for step in (1, 2, 3):
            log.log({'step': step, 'loss': float(step)})
    with RunLog(tmp_path, resumed_at=2) as log:
        log.log({'step': 3, 'loss': 30.0})
    assert [(r['step'], r['loss']) for r in _rows(tmp_path / 'metrics.jsonl')] == [
        (1, 1.0), (2, 2.0), (3, 30.0)]
    assert _scalars(tmp_path)['loss'] == [(1, 1.0), (2, 2.0), (3, 30.0)]
    RunLog(tmp_path, metrics='stage2.jsonl').close()  # a second stage keeps the first's rows
    RunLog(tmp_path).close()  # a new run starts its rows afresh
    assert (tmp_path / 'metrics.jsonl').read_text() == ''


def test_sigterm_stops_an_open_run_as_ctrl_c_does(tmp_path):
    """While a run's log is open SIGTERM raises KeyboardInterrupt; closing restores it."""
    before = signal.getsignal(signal.SIGTERM)
    log = RunLog(tmp_path)
    with pytest.raises(KeyboardInterrupt, match='SIGTERM'):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # the handler runs at the next bytecode; never reached
    log.close()
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_ignored_sigint_is_restored_while_the_log_is_open(tmp_path):
    """A run started in a background shell (SIGINT ignored) still stops on kill -INT."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with RunLog(tmp_path):
            assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_log_opened_off_the_main_thread_leaves_the_handlers(tmp_path):
    """Python allows signal handlers only in the main thread: elsewhere nothing changes."""
    before = signal.getsignal(signal.SIGTERM)
    seen = []

    def open_log():
        with RunLog(tmp_path):
            seen.append(signal.getsignal(signal.SIGTERM))
    worker = threading.Thread(target=open_log)
    worker.start()
    worker.join()
    assert seen == [before]
