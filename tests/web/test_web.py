"""The HTTP face: each API body equals the CLI's JSON, auth, errors, /metrics, health."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from reports_seed import FT, FT2, fee, post, usage
from starlette.testclient import TestClient

from ledger.config_file import LedgerConfig
from ledger.settings import load_settings
from ledger.web.app import MAX_ESTIMATE_BYTES, WebContext, create_app
from ledger.web.metrics import ServiceMetrics

TOKEN = "test-token-not-a-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _today() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def seed_this_month(engine, book) -> str:
    """Usage on the last days (this month and possibly the previous) and one fee."""
    now = _today()
    days = [now - timedelta(days=i) for i in range(5)]
    post(
        engine,
        book,
        *(usage(FT, d.strftime("%Y-%m-%dT%H:00:00"), inp=2_000_000, out=500_000) for d in days),
        *(usage(FT2, d.strftime("%Y-%m-%dT%H:00:00"), inp=300_000, out=90_000) for d in days),
    )
    fee(engine, book, "ftjob-web", FT, now.strftime("%Y-%m-%dT%H:00:00"), 1_000_000)
    return now.strftime("%Y-%m")


@pytest.fixture
def budgets_file(config_dir):
    (config_dir / "budgets.toml").write_text(
        '[[channel]]\nname = "log"\ntype = "log"\n\n'
        '[[budget]]\nname = "all"\namount = "5.00"\nperiod = "monthly"\n'
        'thresholds = [50, 100]\nchannels = ["log"]\n',
        encoding="utf-8",
    )


def client(engine, token: str | None = TOKEN, **config: object) -> TestClient:
    metrics = ServiceMetrics()
    ctx = WebContext(engine, load_settings(), LedgerConfig(**config), token, metrics)  # type: ignore[arg-type]
    metrics.watch(ctx)
    return TestClient(create_app(ctx))


def _same(api: dict, cli_stdout: str) -> None:
    cli = json.loads(cli_stdout)
    for doc in (api, cli):
        doc.pop("generated_at")
        for row in doc.get("rows", []):
            row.pop("lag_seconds", None)  # seconds pass between the two reads
    assert api == cli


def test_every_endpoint_returns_the_cli_json(engine, book, cli, budgets_file):
    month = seed_this_month(engine, book)
    web = client(engine)
    pairs = [
        (f"/api/v1/reports/monthly?month={month}", ["report", "monthly", "-m", month]),
        (
            f"/api/v1/reports/monthly?month={month}&by=project",
            ["report", "monthly", "-m", month, "--by", "project"],
        ),
        (
            f"/api/v1/reports/whatif?month={month}&model=gpt-4.1",
            ["report", "whatif", "-m", month, "--model", "gpt-4.1"],
        ),
        (
            f"/api/v1/reconcile?month={month}&tolerance=1.5",
            ["reconcile", "-m", month, "--tolerance", "1.5"],
        ),
        (f"/api/v1/forecast?month={month}", ["forecast", "--month", month]),
        ("/api/v1/budgets", ["budgets", "status"]),
        ("/api/v1/status", ["status"]),
        ("/api/v1/prices", ["prices", "list"]),
    ]
    for path, args in pairs:
        response = web.get(path, headers=AUTH)
        assert response.status_code == 200, (path, response.text)
        result = cli(*args, "--format", "json")
        assert result.exit_code == 0, (args, result.stderr)
        body = response.json()
        assert body["kind"] and "rows" in body and "totals" in body
        _same(body, result.stdout)
    monthly = web.get(f"/api/v1/reports/monthly?month={month}", headers=AUTH).json()
    assert monthly["kind"] == "monthly_report" and monthly["totals"]["total_cost"] != "0.000000"
    focus = web.get(f"/api/v1/export/focus?month={month}", headers=AUTH)
    assert focus.headers["content-type"].startswith("text/csv")
    assert focus.text == cli("export", "focus", "-m", month).stdout


def test_estimate_endpoint_equals_the_cli_and_limits_the_body(engine, cli, tmp_path):
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"question {i}"},
                    {"role": "assistant", "content": f"answer {i}"},
                ]
            }
        )
        for i in range(12)
    ]
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    web = client(engine)
    response = web.post(
        "/api/v1/estimate?model=gpt-4o-mini", content=data.read_bytes(), headers=AUTH
    )
    assert response.status_code == 200, response.text
    body = response.json()
    result = cli("estimate", str(data), "--model", "gpt-4o-mini", "--format", "json")
    expected = json.loads(result.stdout)
    assert body.pop("file") == "-" and expected.pop("file") == str(data)
    _same(body, json.dumps(expected))
    too_big = web.post(
        "/api/v1/estimate?model=gpt-4o-mini",
        content=b"x",
        headers={**AUTH, "Content-Length": str(MAX_ESTIMATE_BYTES + 1)},
    )
    assert too_big.status_code == 413 and too_big.json()["parameter"] == "body"
    unknown = web.post("/api/v1/estimate?model=gpt-9", content=data.read_bytes(), headers=AUTH)
    assert unknown.status_code == 400 and unknown.json()["parameter"] == "model"


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/api/v1/reports/monthly?month=2025-13", "month"),
        ("/api/v1/reports/monthly?by=colour", "by"),
        ("/api/v1/reports/whatif?month=2025-06", "model"),
        ("/api/v1/reconcile?tolerance=2%25", "tolerance"),
        ("/api/v1/forecast?month=2999-01", "month"),
        ("/api/v1/export/focus?month=june", "month"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(engine, path, parameter):
    response = client(engine).get(path, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["parameter"] == parameter


def test_unknown_paths_are_404_json(engine):
    response = client(engine).get("/api/v2/nothing", headers=AUTH)
    assert response.status_code == 404
    assert response.json() == {"error": "no such endpoint: /api/v2/nothing"}


def test_auth_no_token_and_wrong_token_are_401_health_stays_open(engine):
    web = client(engine)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        for path in ("/api/v1/status", "/api/v1/prices"):
            response = web.get(path, headers=headers)
            assert response.status_code == 401
            assert response.headers["www-authenticate"].startswith("Bearer")
        assert web.get("/", headers=headers).status_code == 401
    assert web.get("/healthz").status_code == 200
    assert web.get("/readyz").status_code == 200
    assert web.get("/metrics").status_code == 200
    assert client(engine, metrics_auth=True).get("/metrics").status_code == 401
    assert client(engine, metrics_auth=True).get("/metrics", headers=AUTH).status_code == 200
    assert client(engine, token=None).get("/api/v1/status").status_code == 200


def test_dashboard_login_sets_a_strict_httponly_cookie(engine, book):
    month = seed_this_month(engine, book)
    web = client(engine)
    page = web.get("/")
    assert page.status_code == 401 and 'name="token"' in page.text
    wrong = web.post("/login", data={"token": "nope"}, follow_redirects=False)
    assert wrong.status_code == 401
    ok = web.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert ok.status_code == 303
    cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and TOKEN.lower() not in cookie
    dashboard = web.get(f"/?month={month}")
    assert dashboard.status_code == 200
    total = web.get(f"/api/v1/reports/monthly?month={month}", headers=AUTH).json()["totals"]
    from ledger.reports.dashboard import usd

    assert f'data-testid="total">{usd(total["total_cost"])}<' in dashboard.text
    assert "<script" not in dashboard.text and "http://" not in dashboard.text.split("<main>")[1]


def test_readyz_reports_a_failing_source(engine):
    from ledger.store.watermarks import record_failure

    record_failure(engine, "openai.usage", "HTTP 503 from upstream", 1_750_000_000)
    response = client(engine).get("/readyz")
    assert response.status_code == 503
    assert "openai.usage" in response.json()["reason"]


def test_readyz_reports_an_unmigrated_schema(db_url):
    from ledger.store.engine import create_ledger_engine

    raw = create_ledger_engine(db_url)  # an empty database, never migrated
    try:
        response = client(raw).get("/readyz")
        assert response.status_code == 503
        assert "schema" in response.json()["reason"]
    finally:
        raw.dispose()


def test_metrics_parse_with_spend_poll_and_budget_series(engine, book, budgets_file):
    seed_this_month(engine, book)
    from ledger.store.watermarks import record_failure

    record_failure(engine, "openai.usage", "boom", 1_750_000_000)
    metrics = ServiceMetrics()
    ctx = WebContext(engine, load_settings(), LedgerConfig(), None, metrics)
    metrics.watch(ctx)
    metrics.observe_poll(2.5, ["openai.usage"])
    web = TestClient(create_app(ctx))
    text = web.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    assert samples[("ftledger_poll_duration_seconds_count", ())] == 1
    assert samples[("ftledger_poll_failures_total", (("source", "openai.usage"),))] == 1
    assert samples[("ftledger_source_consecutive_failures", (("source", "openai.usage"),))] == 1
    spend = {
        dict(labels)["model"]: v
        for (name, labels), v in samples.items()
        if name == "ftledger_month_spend_usd"
    }
    assert set(spend) == {FT, FT2} and all(v > 0 for v in spend.values())
    assert samples[("ftledger_month_training_fees_usd", (("model", FT),))] > 0
    assert ("ftledger_budget_used_ratio", (("budget", "all"),)) in samples
    assert samples[("ftledger_ledger_read_ok", ())] == 1
    # a registry of its own: a second app starts from zero
    fresh = client(engine, token=None).get("/metrics").text
    assert "ftledger_poll_duration_seconds_count 0.0" in fresh
