"""A worker's reports on disk (the run's journal, see `kafkabench.run.journal`).

`ReportFile` appends each report a worker sends as one length-prefixed pickle record and
flushes it (never raising: a full disk must not stop the measurement), so a run whose main process dies still has every report that was sent;
`read_records` reads a file back, stopping quietly at a record cut short by a crash.

May import: nothing of kafkabench (the engine's lowest part).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_HEADER = struct.Struct("<I")


class ReportFile:
    """A worker's report file, opened on the first report; one write and flush per report."""

    def __init__(self, path: str):
        self.path = path
        self._file: Any = None

    def append(self, report: Any) -> None:
        """Add one report (never raises: a full disk must not stop the measurement)."""
        try:
            if self._file is None:
                self._file = open(self.path, "ab")  # noqa: SIM115 - kept open for the worker's life
                self._file.write(_record({"pid": os.getpid()}))
            data = _record(report)
            self._file.write(data)
            self._file.flush()
        except (OSError, pickle.PicklingError):
            pass

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None


def _record(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def read_records(path: Path) -> Iterator[Any]:
    """The records of a report file; a record cut short by a kill ends it, silently."""
    with open(path, "rb") as f:
        while True:
            head = f.read(_HEADER.size)
            if len(head) < _HEADER.size:
                return
            (size,) = _HEADER.unpack(head)
            data = f.read(size)
            if len(data) < size:
                return
            try:
                yield pickle.loads(data)
            except Exception:  # noqa: BLE001 - a damaged record ends what can be read
                return


