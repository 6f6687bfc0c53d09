"""
How faithfully ``vrl play`` replays a bag: play it, record it back with ``vrl record``, compare.

Both run as separate processes over DDS, as a user would run them. For every
bag the script reports the message count per topic (original and recorded
back) and the timing error: per topic, each interval between consecutive
messages of the recorded-back bag minus the original interval (the recorder
logs wall-clock receipt times, the original has the recording's log times),
pooled over topics and bags into a median and p99.

    python tools/player_fidelity.py BAG... --out runs/replay/fidelity.json
"""

import argparse
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from visual_rl_stack.data.bags import bag_topics, read_messages


def log_times(bag: Path) -> dict[str, np.ndarray]:
    """Return topic -> log times (ns) of a bag, in order."""
    times: dict[str, list[int]] = {}
    for message in read_messages(bag):
        times.setdefault(message.topic, []).append(message.log_time)
    return {topic: np.asarray(t, dtype=np.int64) for topic, t in times.items()}


def replay_and_record(bag: Path, back: Path, vrl: str, settle: float) -> None:
    """Record the bag's topics while ``vrl play`` plays it; stop the recorder with Ctrl-C."""
    recorder = subprocess.Popen([vrl, 'record', *sorted(bag_topics(bag)), '--output', str(back)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(settle)  # the recorder is up before the player's publishers appear
        subprocess.run([vrl, 'play', str(bag), '--delay', str(settle)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=30)


def compare(original: dict[str, np.ndarray], back: dict[str, np.ndarray]) -> dict:
    """Return per-topic counts and the interval errors (s) of topics recorded completely."""
    counts = {t: [int(len(original[t])), int(len(back.get(t, [])))] for t in original}
    errors = [((np.diff(back[t]) - np.diff(original[t])) * 1e-9)
              for t in original if t in back and len(back[t]) == len(original[t])]
    return {'counts': counts, 'identical_counts': all(a == b for a, b in counts.values()),
            'interval_errors_s': np.concatenate(errors) if errors else np.zeros(0)}


def main() -> int:
    """Measure every bag given; print and write the pooled numbers."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('bags', nargs='+', type=Path)
    parser.add_argument('--out', type=Path, required=True, help='JSON file to write')
    parser.add_argument('--settle', type=float, default=2.0,
                        help='seconds for the recorder to discover the player (default 2)')
    args = parser.parse_args()
    vrl = str(Path(sys.executable).with_name('vrl'))
    os.environ.setdefault('ROS_DOMAIN_ID', '57')
    results, pooled = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for index, bag in enumerate(args.bags):
            back = Path(scratch) / f'back{index}'
            started = time.monotonic()
            replay_and_record(bag, back, vrl, args.settle)
            found = compare(log_times(bag), log_times(back))
            errors = np.abs(found.pop('interval_errors_s'))
            pooled.append(errors)
            results.append({'bag': str(bag), **found, 'intervals': int(len(errors)),
                            'wall_s': time.monotonic() - started})
            print(f'{bag.name}: counts identical {found["identical_counts"]}, '
                  f'interval error median {np.median(errors) * 1e3:.2f} ms')
    errors = np.concatenate(pooled)
    summary = {'bags': len(results), 'all_counts_identical': all(r['identical_counts']
                                                                 for r in results),
               'messages': int(sum(c[0] for r in results for c in r['counts'].values())),
               'interval_error_ms': {'median': float(np.median(errors) * 1e3),
                                     'p99': float(np.percentile(errors, 99) * 1e3),
                                     'max': float(errors.max() * 1e3), 'n': int(len(errors))},
               'command': ' '.join(['python', 'tools/player_fidelity.py',
                                    *map(str, args.bags), '--out', str(args.out)])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({'summary': summary, 'bags': results}, indent=2) + '\n')
    print(json.dumps(summary, indent=2))
    return 0 if summary['all_counts_identical'] else 1


if __name__ == '__main__':
    sys.exit(main())
