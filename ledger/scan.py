"""Scanning a training file fast: byte ranges of whole lines, checked and counted on all cores.

The file is cut into fixed byte ranges; a worker owns the lines that *start* in its
range, reads them itself (seek + read, so the parent moves no data), and sends back
only a ScanStats — sums, a histogram of tokens per example, the issues it found with
line numbers relative to its range — and how many lines it owned. The parent merges
results in file order, shifting line numbers by the lines before each range. Memory
is a few ranges' worth per process whatever the file size. Small files are scanned
in-process, where a pool would cost more than it saves.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.pool
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ledger.dataset import Count, ScanStats, scan_lines
from ledger.errors import InputError, Problem

CHUNK_BYTES = 1 << 20
# A line longer than this is an error, located, and never held in memory whole (a 2 GB
# file without a newline must not need gigabytes). A training example's context is at
# most 65,536 tokens: a few hundred KB of text.
MAX_LINE_BYTES = 32 << 20
PARALLEL_MIN_BYTES = 4 << 20
MEMO_MAX_CHARS = 4096  # repeated texts shorter than this are encoded once per range

Progress = Callable[[int], None]  # called with the number of bytes just scanned
Task = tuple[str, int, int, str, int | None, int]


def read_owned(stream: BinaryIO, start: int, end: int) -> bytes:
    """The lines that start in [start, end), each with its final b"\\n"."""
    return read_owned_bounded(stream, start, end, None)[0]


def read_owned_bounded(
    stream: BinaryIO, start: int, end: int, max_line: int | None
) -> tuple[bytes, bool]:
    """(the lines that start in [start, end), whether one more line was too long).

    A last line that runs past `end` to more than `max_line` bytes is not kept: it is
    read past in blocks, so no line needs more memory than `max_line`; the caller
    reports it (it is the line after the ones returned).
    """
    if start > 0:
        stream.seek(start - 1)
        block = stream.read(end - start + 1)
        first = block.find(b"\n")
        block = block[first + 1 :] if first >= 0 else b""
    else:
        stream.seek(0)
        block = stream.read(end)
    if not block or block.endswith(b"\n"):
        return block, False
    last = block.rfind(b"\n") + 1
    line = [block[last:]]
    held = len(line[0])  # bytes of the last line so far, without its newline
    while True:  # the last line runs past `end`: read on to its end
        if max_line is not None and held > max_line:
            del line[:]
            _skip_line(stream)
            return block[:last], True
        more = stream.read(1 << 16)
        cut = more.find(b"\n")
        if cut >= 0:
            line.append(more[: cut + 1])
            held += cut
            if max_line is not None and held > max_line:
                return block[:last], True
            break
        if not more:
            break
        line.append(more)
        held += len(more)
    return block[:last] + b"".join(line), False


def _skip_line(stream: BinaryIO) -> None:
    """Read past the rest of a line without keeping it."""
    while more := stream.read(1 << 20):
        if b"\n" in more:
            return


def _memo_count(encode: Callable[[str], list[int]]) -> Count:
    """A token counter that encodes a repeated text (system prompts, roles) once."""
    memo: dict[str, int] = {}

    def count(text: str) -> int:
        n = memo.get(text)
        if n is None:
            n = len(encode(text))
            if len(text) < MEMO_MAX_CHARS:
                memo[text] = n
        return n

    return count


def _scan_range(task: Task) -> tuple[ScanStats, int, int]:
    """Worker: (stats of the owned lines, number of owned lines, bytes covered)."""
    from ledger.tokens import get_encoding

    path, start, end, encoding_name, cap, max_line = task
    encoding = get_encoding(encoding_name)
    with open(path, "rb") as stream:
        data, too_long = read_owned_bounded(stream, start, end, max_line)
    stats = scan_lines(
        data,
        _memo_count(encoding._core_bpe.encode_ordinary),
        cap,
        safe_count=lambda text: len(encoding.encode_ordinary(text)),
        max_line=max_line,
    )
    lines = data.count(b"\n")
    if too_long:  # the line after `data`, left unread
        stats.lines += 1
        stats.error(lines + 1, "line_too_long", f"the line is longer than {max_line:,} bytes")
        lines += 1
    return stats, lines, end - start


def scan_file(
    path: Path,
    encoding_name: str,
    cap: int | None,
    *,
    workers: int | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    progress: Progress | None = None,
    max_line_bytes: int | None = None,
) -> ScanStats:
    """Validate and count every line of `path`; workers=1 scans in this process."""
    from ledger.tokens import get_encoding

    try:
        size = path.stat().st_size
        with path.open("rb"):
            pass
    except OSError as exc:
        raise InputError([Problem(str(path), f"cannot read: {exc.strerror}")]) from None
    get_encoding(encoding_name)  # load once here, so forked workers inherit it
    if workers is None:
        workers = (os.cpu_count() or 1) if size >= PARALLEL_MIN_BYTES else 1
    max_line = MAX_LINE_BYTES if max_line_bytes is None else max_line_bytes
    tasks = [
        (str(path), start, min(start + chunk_bytes, size), encoding_name, cap, max_line)
        for start in range(0, size, chunk_bytes)
    ]
    total = ScanStats()
    lines_before = 0
    if workers <= 1:
        results = map(_scan_range, tasks)
        for stats, owned, covered in results:
            total.merge(stats, lines_before)
            lines_before += owned
            if progress:
                progress(covered)
        return total
    with _pool(workers) as pool:
        for stats, owned, covered in pool.imap(_scan_range, tasks):
            total.merge(stats, lines_before)
            lines_before += owned
            if progress:
                progress(covered)
    return total


def _pool(workers: int) -> multiprocessing.pool.Pool:
    """A fork pool where the platform has fork: workers share the loaded encoding's pages.

    gc.freeze() first, so the workers' garbage collector does not touch (and so copy)
    every object inherited from the parent.
    """
    import gc

    methods = multiprocessing.get_all_start_methods()
    if "fork" not in methods:
        return multiprocessing.get_context().Pool(workers)
    gc.freeze()
    return multiprocessing.get_context("fork").Pool(workers)
