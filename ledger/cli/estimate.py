"""`ftledger estimate` and `ftledger breakeven`: what a fine-tune will cost, and when it pays."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ledger.cli.common import (
    ColumnsOption,
    Format,
    FormatOption,
    TableChoice,
    WideOption,
    app_context,
    day_option,
    emit,
    emit_json,
    emit_table,
)
from ledger.period import utc_date

if TYPE_CHECKING:
    from ledger.estimate import Estimate

AtOption = Annotated[
    str | None,
    typer.Option("--at", help="Price in force on this UTC date (YYYY-MM-DD); default today."),
]
SHOWN_ISSUES = 50  # table output lists this many errors/warnings; json lists them all


@contextmanager
def _lazy_progress(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A progress callback whose bar starts at the first update, after the worker pool
    exists: forking while rich's refresh thread runs could deadlock the workers."""
    from ledger.cli.progress import byte_progress

    with ExitStack() as stack:
        done = 0
        update: list[Callable[[int], None] | None] = []

        def advance(scanned: int) -> None:
            nonlocal done
            if not update:
                update.append(stack.enter_context(byte_progress(description, total)))
            done += scanned
            bar = update[0]
            if bar is not None:
                bar(done)

        yield advance


def estimate(
    ctx: typer.Context,
    model: Annotated[str, typer.Option("--model", help="Model to fine-tune.")],
    file: Annotated[
        Path | None,
        typer.Argument(
            help="Training file (JSONL: chat or preference; prompt/completion for"
            " davinci-002 and babbage-002). With --examples: a sample of the dataset.",
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(min=1, max=100, help="Epochs (default: the cookbook rule from the size)."),
    ] = None,
    at: AtOption = None,
    fmt: FormatOption = Format.table,
    record: Annotated[
        bool, typer.Option("--record", help="Store the estimate in the ledger.")
    ] = False,
    moderate: Annotated[
        bool,
        typer.Option("--moderate", help="Screen every example with OpenAI's moderation endpoint."),
    ] = False,
    file_id: Annotated[
        str,
        typer.Option(
            "--file-id",
            help="With --record: OpenAI's id of the uploaded file, to match the job later.",
        ),
    ] = "",
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes (default: all cores).")
    ] = None,
    examples: Annotated[
        int | None,
        typer.Option(
            "--examples",
            min=1,
            help="Forecast a dataset of N examples: from --avg-tokens, or from FILE as a sample.",
        ),
    ] = None,
    avg_tokens: Annotated[
        int | None,
        typer.Option(
            "--avg-tokens", min=1, help="With --examples and no FILE: tokens per example."
        ),
    ] = None,
) -> None:
    """Validate a training file and estimate the cost of fine-tuning on it.

    Counts tokens the OpenAI cookbook's way with the model's encoding (offline), caps
    each example at the model's limit, applies the default epochs rule, and prices the
    trained tokens at the training price in force. Exits 1 when the file has format
    errors (OpenAI would reject it), after printing the full report.

    Before the dataset exists: `--examples N --avg-tokens T` forecasts N examples of T
    tokens; `FILE --examples N` scales a sample to N examples (epochs by the cookbook
    rule for N, a 90% interval by a seeded bootstrap of the sample).

    Example: ftledger estimate train.jsonl --model gpt-4o-mini --format json

    Example: ftledger estimate sample.jsonl --examples 20000 --model gpt-4.1-mini
    """
    if examples is not None or avg_tokens is not None:
        _forecast(ctx, model, file, examples, avg_tokens, epochs, at, fmt, record, moderate)
        return
    if file is None:
        raise typer.BadParameter("give a training FILE, or --examples N --avg-tokens T")
    if file_id and not record:
        raise typer.BadParameter("--file-id is stored with --record", param_hint="--file-id")
    from ledger.estimate import estimate as run_estimate

    app_ctx = app_context(ctx)
    on = day_option(at, "--at") or utc_date(int(time.time()))
    size = file.stat().st_size if file.is_file() else 0
    with _lazy_progress(f"counting {file.name}", size) as progress:
        result = run_estimate(
            app_ctx.pricebook,
            model,
            file,
            epochs=epochs,
            at=on,
            workers=workers,
            progress=progress,
        )
    from ledger.documents import estimate_document

    extra: dict[str, Any] = {}
    if moderate:
        extra["moderation"] = _moderate(file)
    if record:
        extra["recorded_id"] = _record(app_ctx, file, result, file_id)
    document = {**result.as_dict(), **extra}
    if fmt is Format.json:
        emit_json(estimate_document(result, **extra))
    else:
        _print_report(fmt, result, document)
    flagged = document.get("moderation", {}).get("flagged_lines", 0)
    if not result.ok or flagged:
        raise typer.Exit(1)


def _forecast(
    ctx: typer.Context,
    model: str,
    file: Path | None,
    examples: int | None,
    avg_tokens: int | None,
    epochs: int | None,
    at: str | None,
    fmt: Format,
    record: bool,
    moderate: bool,
) -> None:
    """`--examples`: the cost of a dataset of N examples, before it exists."""
    from ledger.estimate import forecast_average, forecast_from_file

    if examples is None:
        raise typer.BadParameter("--avg-tokens needs --examples N", param_hint="--examples")
    if record or moderate:
        raise typer.BadParameter(
            "--record and --moderate take a whole training file, not a forecast"
        )
    if (file is None) == (avg_tokens is None):
        raise typer.BadParameter(
            "with --examples give either --avg-tokens T or a sample FILE (not both)"
        )
    book = app_context(ctx).pricebook
    on = day_option(at, "--at") or utc_date(int(time.time()))
    sample = None
    if file is None:
        assert avg_tokens is not None
        forecast = forecast_average(book, model, examples, avg_tokens, epochs=epochs, at=on)
    else:
        sample, found = forecast_from_file(book, model, file, examples, epochs=epochs, at=on)
        if found is None:
            raise typer.BadParameter(f"{file} has no valid example to scale", param_hint="FILE")
        forecast = found
    document = forecast.as_dict()
    if sample is not None:
        document["sample"] = {
            "file": sample.file,
            "valid": sample.ok,
            "error_counts": sample.error_counts,
            "token_distribution": sample.distribution.as_dict() if sample.distribution else None,
        }
    if fmt is Format.json:
        emit_json(document)
    else:
        flat = {k: v for k, v in document.items() if not isinstance(v, dict) and v is not None}
        if fmt is Format.csv:
            emit(fmt, [flat], list(flat))
        else:
            emit_table(
                [{"field": k, "value": v} for k, v in flat.items()],
                ["field", "value"],
                title=f"Forecast for {examples} examples on {model}",
            )
    if sample is not None and not sample.ok:
        typer.echo(
            f"ftledger: the sample has format errors ({sum(sample.error_counts.values())});"
            " run `ftledger estimate` on it to list them",
            err=True,
        )
        raise typer.Exit(1)


def _print_report(fmt: Format, result: Estimate, document: dict[str, Any]) -> None:
    summary = {
        k: v for k, v in document.items() if not isinstance(v, list | dict) and v is not None
    }
    for key, value in (document.get("token_distribution") or {}).items():
        summary[f"tokens_{key}"] = value
    for key in ("checked_lines", "flagged_lines"):
        if "moderation" in document:
            summary[f"moderation_{key}"] = document["moderation"][key]
    if fmt is Format.csv:
        emit(fmt, [summary], list(summary))
        return
    sys.stdout.write(_key_values(f"Estimate for {result.file}", summary))
    for label, issues, counts in (
        ("Errors", result.errors, result.error_counts),
        ("Warnings", result.warnings, result.warning_counts),
    ):
        if not counts:
            continue
        total = sum(counts.values())
        by_type = ", ".join(f"{t}: {n}" for t, n in sorted(counts.items()))
        shown = [i.as_dict() for i in issues[:SHOWN_ISSUES]]
        more = f" (first {len(shown)} shown; json lists more)" if total > len(shown) else ""
        sys.stdout.write("\n")
        emit_table(shown, ["line", "type", "message"], title=f"{label}: {total} ({by_type}){more}")
    moderation = document.get("moderation")
    if moderation and moderation["flagged"]:
        sys.stdout.write("\n")
        emit_table(
            [
                {"line": f["line"], "categories": ",".join(f["categories"])}
                for f in moderation["flagged"]
            ],
            ["line", "categories"],
            title=f"Flagged by moderation: {moderation['flagged_lines']} lines",
        )


_MONEY_KEYS = frozenset({"cost"})
_COUNT_KEYS = frozenset(
    {
        "lines",
        "examples",
        "dataset_tokens",
        "billing_tokens",
        "max_tokens_per_example",
        "examples_truncated",
        "trained_tokens",
    }
)


def _key_values(title: str, summary: dict[str, Any]) -> str:
    """`label: value` lines, aligned, in people's numbers (tokens 12,345; cost $1.23)."""
    from ledger.reports.text import count, people_cell

    def shown(key: str, value: Any) -> str:
        if key in _MONEY_KEYS:
            return people_cell("money", value)
        if key in _COUNT_KEYS or key.startswith("tokens_") or key.startswith("moderation_"):
            return count(value) if isinstance(value, int) else str(value)
        if key == "training_price":
            return f"${value} per 1M tokens"
        return people_cell("text", value)

    labels = {k: k.replace("_", " ") + ":" for k in summary}
    width = max((len(v) for v in labels.values()), default=0)
    lines = [title, ""]
    lines += [f"{labels[k].ljust(width)} {shown(k, v)}" for k, v in summary.items()]
    return "\n".join(lines) + "\n"


def _moderate(file: Path) -> dict[str, Any]:
    from ledger.moderation import moderate_file

    return moderate_file(file).as_dict()


def _record(app_ctx: Any, file: Path, result: Estimate, file_id: str) -> int:
    from ledger.store.estimates import record_estimate

    return record_estimate(
        app_ctx.engine,
        file,
        result,
        price_version=app_ctx.pricebook.version,
        openai_file_id=file_id,
    )


def report_estimates(
    ctx: typer.Context,
    fmt: FormatOption = Format.table,
    table_columns: ColumnsOption = None,
    wide: WideOption = False,
) -> None:
    """Recorded estimates against the trained tokens and cost of the jobs that trained
    their files, with the error in percent of the actual, then the calibration in one
    line (median, mean absolute and range of the token errors).

    A job is matched through the OpenAI file id given with `estimate --record --file-id`.

    Example: ftledger report estimates --format csv
    """
    from ledger.estimate import calibration
    from ledger.reports.table import Column
    from ledger.store.estimates import compare_estimates

    comparisons = compare_estimates(app_context(ctx).existing_engine)
    rows = [c.as_dict() for c in comparisons]
    columns = [
        Column("estimate_id", "id", default=False),
        Column("file", kind="name"),
        Column("model", kind="name"),
        Column("job_id", "job"),
        Column("estimated_trained_tokens", "est. tokens", kind="count"),
        Column("actual_trained_tokens", "actual tokens", kind="count"),
        Column("tokens_error_pct", "tok err", kind="pct", default=False),
        Column("estimated_cost", "est. cost", kind="money"),
        Column("actual_cost", "actual cost", kind="money"),
        Column("cost_error_pct", "cost err", kind="pct"),
    ]
    emit(
        fmt,
        rows,
        columns,
        kind="estimate_comparison",
        title="Estimates against actual training (USD)",
        choice=TableChoice(table_columns, wide),
    )
    if fmt is Format.table:
        summary = calibration(
            [c.tokens_error_pct for c in comparisons if c.tokens_error_pct is not None]
        )
        typer.echo(
            summary.sentence()
            if summary
            else "No recorded estimate has a finished job yet (record with --file-id)."
        )


def breakeven(
    ctx: typer.Context,
    model: Annotated[str, typer.Option("--model", help="The fine-tuned (or base) model.")],
    base_prompt_tokens: Annotated[
        int, typer.Option(min=0, help="Prompt tokens per request on the base model.")
    ],
    ft_prompt_tokens: Annotated[
        int, typer.Option(min=0, help="Prompt tokens per request on the fine-tuned model.")
    ],
    output_tokens: Annotated[int, typer.Option(min=0, help="Output tokens per request.")],
    training_cost: Annotated[
        str | None, typer.Option(help="Training fee in USD (a decimal string).")
    ] = None,
    dataset: Annotated[
        Path | None, typer.Option(help="Training file: its estimated cost is the fee.")
    ] = None,
    at: AtOption = None,
    fmt: FormatOption = Format.table,
) -> None:
    """Requests after which a fine-tuned model (short prompt + training fee) beats the base
    model with its long prompt, at the prices in force.

    Example: ftledger breakeven --model gpt-4o-mini --base-prompt-tokens 1500
    --ft-prompt-tokens 200 --output-tokens 150 --training-cost 12.50
    """
    from ledger.breakeven import breakeven as compute
    from ledger.money import D
    from ledger.reports.documents import envelope

    if (training_cost is None) == (dataset is None):
        raise typer.BadParameter("give exactly one of --training-cost or --dataset")
    book = app_context(ctx).pricebook
    on = day_option(at, "--at") or utc_date(int(time.time()))
    if dataset is not None:
        from ledger.estimate import estimate as run_estimate

        result = run_estimate(book, model, dataset, at=on)
        if result.cost is None or not result.ok:
            raise typer.BadParameter(f"{dataset} cannot be priced (errors or per-hour training)")
        fee = result.cost
    else:
        try:
            fee = D(training_cost or "")
            if fee < 0:
                raise ValueError
        except ValueError:
            raise typer.BadParameter(
                f"{training_cost!r} is not a non-negative decimal", param_hint="--training-cost"
            ) from None
    try:
        outcome = compute(
            book,
            model,
            base_prompt_tokens=base_prompt_tokens,
            ft_prompt_tokens=ft_prompt_tokens,
            output_tokens=output_tokens,
            training_cost=fee,
            on=on,
        )
    except ValueError as exc:  # a fee finer than a pico-dollar
        raise typer.BadParameter(str(exc), param_hint="--training-cost") from None
    row = outcome.as_dict()
    emit(fmt, [row], list(row), document=envelope("breakeven", **row), title="Break-even (USD)")
