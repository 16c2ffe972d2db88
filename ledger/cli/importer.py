"""`ftledger import`: bring usage recorded elsewhere into the ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ledger.cli.common import Format, FormatOption, app_context, emit

app = typer.Typer(help="Import usage from files.", no_args_is_help=True)


@app.command("usage")
def usage(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV with Usage API column names.", dir_okay=False)],
    skip_invalid: Annotated[
        bool,
        typer.Option(help="Import the good rows; write the bad ones to FILE.rejected.csv."),
    ] = False,
    source: Annotated[str, typer.Option(help="Source name recorded with the entries.")] = "import",
    fmt: FormatOption = Format.table,
) -> None:
    """Import a usage CSV (columns as the Usage API's fields). Re-importing changes nothing.

    Columns: start_time, end_time (unix seconds or ISO-8601 UTC), model, input_tokens,
    output_tokens, and optionally input_cached_tokens, num_model_requests, project_id,
    api_key_id, user_id, batch, service_tier. Unknown columns are ignored.

    Example: ftledger import usage usage-2026-10.csv --skip-invalid
    """
    from ledger.cli.progress import byte_progress
    from ledger.importer import import_usage
    from ledger.reports.documents import envelope

    app_ctx = app_context(ctx)
    book = app_ctx.pricebook
    size = file.stat().st_size if file.is_file() else 0
    with byte_progress(f"reading {file.name}", size) as progress:
        result = import_usage(
            app_ctx.engine, book, file, source=source, skip_invalid=skip_invalid, progress=progress
        )
    summary: dict[str, Any] = {
        "file": str(file),
        "rows": result.rows,
        "buckets": result.posted.observed,
        "entries_posted": result.posted.posted,
        "unchanged": result.posted.unchanged,
        "rejected": result.rejected,
        "rejected_file": str(result.rejected_file) if result.rejected_file else None,
        "unpriced_models": sorted(result.posted.unpriced_models),
    }
    row = {**summary, "unpriced_models": ",".join(sorted(result.posted.unpriced_models))}
    emit(
        fmt,
        [row],
        list(row),
        document=envelope(
            "import", **{("rows_read" if k == "rows" else k): v for k, v in summary.items()}
        ),
        title="Import",
    )
