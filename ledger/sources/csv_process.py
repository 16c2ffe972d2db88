"""Reading a usage CSV in a second process, beside the process that posts it.

A PostgreSQL import's time is Python parsing the file plus the server comparing it
with the ledger. In one process they take turns: threads share one interpreter lock,
and a posting thread waited for it after every round trip (measured: a reader thread
saved nothing at 1M rows). Here a child process parses and validates each batch
(sources.csv_usage.UsageCsvStream, unchanged) while the parent posts the one before.

Each batch travels as staging rows, `(*key, requests, input, cached, output)` (the
posting prices only what it posts: store.pg_import), in marshal format (a quarter of
pickle's cost for tuples of numbers and text), with the bad lines met so far; the
parent's ProcessCsvStream offers what UsageCsvStream offers: rows, problems, rejected
lines, header.
"""

from __future__ import annotations

import gc
import marshal
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import Callable, Generator
from pathlib import Path
from typing import IO, Any

import ledger
from ledger.errors import InputError, LedgerError, Problem
from ledger.pricebook import PriceBook
from ledger.pricing import UsagePricer, safe_count
from ledger.sources.csv_usage import SeenKeys, Unordered, UsageCsvStream

StagedRow = tuple[Any, ...]
_MARSHAL_VERSION = 2  # version 3+ tracks shared objects: 4x slower to write, no smaller
# A plain interpreter, not multiprocessing's spawn: that imports the caller's main
# module again, and fails in any script without an `if __name__ == "__main__"` guard.
_CHILD = "from ledger.sources.csv_process import child_main; child_main()"


class ProcessCsvStream:
    """A usage CSV read in a child process, in batches of staging rows.

    `problems` and `rejected` grow as batches arrive (the child sends the bad lines
    met so far with each batch); `rows` and `header` are complete at the end.
    """

    def __init__(
        self,
        path: Path,
        book: PriceBook,
        *,
        source: str = "import",
        spill: bool = False,
        seen_window: int | None = None,
        progress: Callable[[int], None] | None = None,
    ):
        self.path, self.source, self.book = path, source, book
        self.spill, self.seen_window, self.progress = spill, seen_window, progress
        self.problems: list[Problem] = []
        self.rejected: list[tuple[int, list[str], str]] = []
        self.header: list[str] = []
        self.rows = 0

    def batches(self, size: int) -> Generator[list[StagedRow], None, None]:
        """Each batch's staging rows; keys never repeat across batches.

        Raises what UsageCsvStream raises (InputError, Unordered). Closing this stops
        the child.
        """
        args = (self.path, self.book, self.source, self.spill, self.seen_window, size)
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": _python_path()},
        )
        assert child.stdin is not None and child.stdout is not None
        try:
            with child.stdin:
                child.stdin.write(pickle.dumps(args))
            while True:
                message = self._receive(child.stdout, child)
                kind = message[0]
                if kind == "batch":
                    _, position, self.rows, problems, rejected, rows = message
                    self._note(problems, rejected)
                    if self.progress is not None:
                        self.progress(position)
                    yield rows
                elif kind == "end":
                    _, self.rows, self.header, problems, rejected = message
                    self._note(problems, rejected)
                    return
                elif kind == "input-error":
                    raise InputError([Problem(*p) for p in message[1]])
                elif kind == "unordered":
                    raise Unordered(message[1])
                else:
                    raise LedgerError(f"reading {self.path} failed: {message[1]}")
        finally:
            child.stdout.close()  # a child still writing stops at once (a broken pipe)
            if child.poll() is None:
                child.kill()
            child.wait()

    def _receive(self, channel: IO[bytes], child: subprocess.Popen[bytes]) -> tuple[Any, ...]:
        head = channel.read(8)
        if len(head) == 8:
            size = int.from_bytes(head, "big")
            payload = channel.read(size)
            if len(payload) == size:
                return tuple(marshal.loads(payload))
        code = child.wait()
        raise LedgerError(f"reading {self.path} stopped: its reading process exited ({code})")

    def _note(self, problems: list[tuple[str, str]], rejected: list[Any]) -> None:
        self.problems += [Problem(*p) for p in problems]
        self.rejected += rejected


def _python_path() -> str:
    """The child imports this very `ledger` package, wherever the caller found it."""
    here = str(Path(ledger.__file__).resolve().parent.parent)
    inherited = os.environ.get("PYTHONPATH")
    return here if not inherited else os.pathsep.join([here, inherited])


def child_main() -> None:
    """The child: stream the file, send every batch priced, then the end (or the error).

    Messages go to the original standard output, each as its length and marshal data;
    anything else printed goes to standard error.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    gc.disable()  # millions of tuples, no cycles (ledger.importer.cyclic_gc_paused)
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    path, book, source, spill, seen_window, size = pickle.loads(sys.stdin.buffer.read())
    position = [0]
    window = {} if seen_window is None else {"window": seen_window}
    stream = UsageCsvStream(
        path,
        source=source,
        seen=SeenKeys(spill=spill, **window),
        price=UsagePricer(book).price,  # for the rare count that could overflow a cost
        count_limit=safe_count(book),
        progress=lambda at: position.__setitem__(0, at),
    )
    sent = 0

    def bad_lines() -> tuple[list[tuple[str, str]], list[Any]]:
        nonlocal sent
        problems = [(p.where, p.message) for p in stream.problems[sent:]]
        rejected = stream.rejected[sent:]
        sent = len(stream.problems)
        return problems, rejected

    def put(*message: Any) -> None:
        payload = marshal.dumps(message, _MARSHAL_VERSION)
        channel.write(len(payload).to_bytes(8, "big"))
        channel.write(payload)
        channel.flush()

    try:
        for batch in stream.lists(size):
            rows = [(*o.key, *o[1:]) for o in batch]
            put("batch", position[0], stream.rows, *bad_lines(), rows)
        put("end", stream.rows, stream.header, *bad_lines())
    except InputError as exc:
        put("input-error", [(p.where, p.message) for p in exc.problems])
    except Unordered as exc:
        put("unordered", str(exc))
    except BrokenPipeError:
        os._exit(0)  # the parent stopped reading (an error there): nothing to tell it
    except Exception as exc:
        put("failed", f"{type(exc).__name__}: {exc}")
    channel.close()
