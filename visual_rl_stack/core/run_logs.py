"""
The logs of a training run: ``metrics.jsonl``, TensorBoard and ``summary.json``.

Every trainer logs through :class:`RunLog`, so every run folder is read the
same way: one JSON row per logged step, the row's numbers as TensorBoard
scalars, and a summary that says when and on what machine it was measured.
A resumed run drops the rows (and TensorBoard events) logged after its saved
training state, so work lost since then is not counted twice. While the log
is open, SIGTERM stops the run as Ctrl-C does (:mod:`.interrupts`), so a run
ended by ``timeout`` or a scheduler keeps its record too.
"""

import json
from numbers import Real
from pathlib import Path
from types import TracebackType
from typing import Any, Mapping, Optional, Sequence

from torch.utils.tensorboard import SummaryWriter

from .config_dicts import flatten_mapping
from .interrupts import StopAsInterrupt
from .records import machine_description, now_iso, write_json
from .run_layout import METRICS, PathLike, SUMMARY, TENSORBOARD


class RunLog:
    """Appends metrics rows mirrored to TensorBoard; writes the run's summary."""

    def __init__(self, out_dir: PathLike, step_key: str = 'step', prefix: str = '',
                 skip: Sequence[str] = (), resumed_at: Optional[int] = None,
                 metrics: str = METRICS, summary: str = SUMMARY):
        """
        Open the logs of ``out_dir``: a fresh metrics file, or a resumed one cut at a step.

        ``step_key`` names the row field that is the step (TensorBoard's x
        axis); scalars are tagged ``prefix + name`` (nested rows flattened with
        ``/``), except the step and the ``skip`` fields. ``resumed_at`` is the
        step of the training state a resumed run continues from (None: a new
        run). ``metrics`` and ``summary`` name the files, for a second stage
        sharing the folder.
        """
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.out_dir / metrics
        self.summary_path = self.out_dir / summary
        self.step_key, self.prefix = step_key, prefix
        self.skip = {step_key, *skip}
        self._keep_rows_until(resumed_at)
        purge = None if resumed_at is None else resumed_at + 1
        self.writer = SummaryWriter(str(self.out_dir / TENSORBOARD), purge_step=purge)
        self._stop_handlers = StopAsInterrupt()
        self._stop_handlers.install()

    def _keep_rows_until(self, step: Optional[int]) -> None:
        """Drop every metrics row (all of them for a new run) logged after ``step``."""
        if not self.metrics_path.exists():
            return
        lines = [line for line in self.metrics_path.read_text().splitlines() if line]
        kept = [] if step is None else [
            line for line in lines if json.loads(line).get(self.step_key, step) <= step]
        if len(kept) != len(lines):
            tmp = self.metrics_path.with_name(f'.{self.metrics_path.name}.tmp')
            tmp.write_text(''.join(line + '\n' for line in kept))
            tmp.replace(self.metrics_path)

    def log(self, row: Mapping[str, Any]) -> None:
        """Append ``row`` to the metrics file and its numbers to TensorBoard, both flushed."""
        with self.metrics_path.open('a') as metrics:
            metrics.write(json.dumps(row) + '\n')
        step = row[self.step_key]
        for name, value in flatten_mapping(row, '/').items():
            if name not in self.skip and isinstance(value, Real):
                self.writer.add_scalar(self.prefix + name, value, step)
        self.writer.flush()

    def write_summary(self, summary: Mapping[str, Any]) -> dict:
        """Write the summary atomically with the date and machine; return what was written."""
        written = {**summary, 'date': now_iso(), 'machine': machine_description()}
        write_json(written, self.summary_path)
        return written

    def close(self) -> None:
        """Close the TensorBoard writer; give SIGTERM back its previous handler."""
        self.writer.close()
        self._stop_handlers.restore()

    def __enter__(self) -> 'RunLog':
        """Return the log, closed when the block ends (an exception included)."""
        return self

    def __exit__(self, kind: Optional[type], error: Optional[BaseException],
                 trace: Optional[TracebackType]) -> None:
        """Close the TensorBoard writer."""
        self.close()
