"""Reading a usage CSV as batches of staging rows, in a second process when it is large.

An import's time is Python parsing the file plus the database comparing it with the
ledger. In one process they take turns: threads share one interpreter lock (measured:
a reader thread saved nothing at 1M rows on PostgreSQL, and slowed SQLite). So a large
file is parsed and validated by a child process (sources.csv_usage.UsageCsvStream,
unchanged) while the importing process posts the batch before.

Each batch travels as staging rows, `(*UsageKey, requests, input, cached, output)`, in
marshal format (a quarter of pickle's cost for tuples of numbers and text), with the
bad lines met so far. A small file is read in the importing process (starting a child
costs more than parsing it) through the same messages, so both read alike.
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
from contextlib import closing
from pathlib import Path
from typing import IO, Any

import ledger
from ledger.errors import InputError, LedgerError, Problem
from ledger.pricebook import PriceBook
from ledger.pricing import UsagePricer, safe_count
from ledger.sources.csv_usage import SeenKeys, Unordered, UsageCsvStream

StagedRow = tuple[Any, ...]
Message = tuple[Any, ...]
# Files at least this large are read by a child process: about 9,000 rows, which the
# child parses in about the time it takes to start.
CHILD_FROM_BYTES = 1 << 20
_MARSHAL_VERSION = 2  # version 3+ tracks shared objects: 4x slower to write, 15% smaller
# A plain interpreter, not multiprocessing's spawn: that imports the caller's main
# module again, and fails in any script without an `if __name__ == "__main__"` guard.
_CHILD = "from ledger.sources.csv_process import child_main; child_main()"


class StagedCsvStream:
    """A usage CSV in batches of staging rows whose keys never repeat across batches.

    `problems` and `rejected` grow as batches arrive (with each batch come the bad
    lines met so far); `rows` and `header` are complete at the end.
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
        child: bool | None = None,
    ):
        """`child`: read in a child process (None: when the file is CHILD_FROM_BYTES or
        more)."""
        self.path, self.source, self.progress = path, source, progress
        self.args = (path, book, source, spill, seen_window)
        if child is None:
            child = path.is_file() and path.stat().st_size >= CHILD_FROM_BYTES
        self.child = child
        self.problems: list[Problem] = []
        self.rejected: list[tuple[int, list[str], str]] = []
        self.header: list[str] = []
        self.rows = 0

    def batches(self, size: int) -> Generator[list[StagedRow], None, None]:
        """Raises what UsageCsvStream raises (InputError, Unordered). Closing this stops
        the child."""
        messages = _from_child(*self.args, size) if self.child else _messages(*self.args, size)
        with closing(messages):
            for message in messages:
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
                elif kind == "input-error":
                    raise InputError([Problem(*p) for p in message[1]])
                elif kind == "unordered":
                    raise Unordered(message[1])
                else:
                    raise LedgerError(f"reading {self.path} failed: {message[1]}")

    def _note(self, problems: list[tuple[str, str]], rejected: list[Any]) -> None:
        self.problems += [Problem(*p) for p in problems]
        self.rejected += rejected


def _messages(
    path: Path,
    book: PriceBook,
    source: str,
    spill: bool,
    seen_window: int | None,
    size: int,
) -> Generator[Message, None, None]:
    """Read the file: a message per batch, then the end or the file's error."""
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

    try:
        for batch in stream.batches(size):
            rows = [(*o.key, *o[1:]) for o in batch]
            yield ("batch", position[0], stream.rows, *bad_lines(), rows)
        yield ("end", stream.rows, stream.header, *bad_lines())
    except InputError as exc:
        yield ("input-error", [(p.where, p.message) for p in exc.problems])
    except Unordered as exc:
        yield ("unordered", str(exc))


def _from_child(*args: Any) -> Generator[Message, None, None]:
    """_messages(*args), read by a child process; closing this stops the child."""
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
            message = _receive(child.stdout)
            if message is None:
                code = child.wait()
                raise LedgerError(f"reading {args[0]} stopped: its process exited ({code})")
            yield message
            if message[0] != "batch":
                return
    finally:
        child.stdout.close()  # a child still writing stops at once (a broken pipe)
        if child.poll() is None:
            child.kill()
        child.wait()


def _receive(channel: IO[bytes]) -> Message | None:
    """The next message, or None if the child ended without one."""
    head = channel.read(8)
    if len(head) == 8:
        size = int.from_bytes(head, "big")
        payload = channel.read(size)
        if len(payload) == size:
            return tuple(marshal.loads(payload))
    return None


def _python_path() -> str:
    """The child imports this very `ledger` package, wherever the caller found it."""
    here = str(Path(ledger.__file__).resolve().parent.parent)
    inherited = os.environ.get("PYTHONPATH")
    return here if not inherited else os.pathsep.join([here, inherited])


def child_main() -> None:
    """The child: send _messages() for the arguments read from standard input.

    Messages go to the original standard output, each as its length and marshal data;
    anything else printed goes to standard error.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    gc.disable()  # millions of tuples, no cycles (ledger.importer.cyclic_gc_paused)
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)

    def put(message: Message) -> None:
        payload = marshal.dumps(message, _MARSHAL_VERSION)
        channel.write(len(payload).to_bytes(8, "big"))
        channel.write(payload)
        channel.flush()

    try:
        for message in _messages(*pickle.loads(sys.stdin.buffer.read())):
            put(message)
    except BrokenPipeError:
        os._exit(0)  # the parent stopped reading (an error there): nothing to tell it
    except Exception as exc:
        put(("failed", f"{type(exc).__name__}: {exc}"))
    channel.close()
