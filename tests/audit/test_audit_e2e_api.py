"""The audit API, compliance page and CLI over a request that went through the whole stack
(router → worker → simulator → aggregator, audited by the stack's audit service into SQLite
with the default ``redact`` text mode):

* the lineage page in headless Chromium (selenium + Debian's chromium/chromedriver): login
  with a compliance key shows the timeline and the redacted prompt; an ops key hides text;
* schemathesis against the served OpenAPI document finds no server error;
* the ``modelbus audit`` commands show, search, report, export (with progress) and verify.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import uuid

import pytest
from modelbus_audit.store import AuditStore
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as ChromeService
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import COMPLIANCE_KEY, OPS_KEY
from tests.upstream import RESPONSES, Upstream, request_json

pytestmark = pytest.mark.e2e

PROMPT = "Summarise my ticket and reply to ana.maria@example.com about Kafka logs."
COMPLETE = {"request", "task", "result", "response"}


@pytest.fixture(scope="module")
def served_request(sqlite_stack) -> str:
    """One request through the stack, its lineage complete in the audit store."""
    rid = f"ui-{uuid.uuid4().hex[:8]}"

    async def run() -> None:
        async with Upstream(sqlite_stack.bootstrap) as upstream:
            responses = await upstream.tail(RESPONSES)
            await upstream.send(request_json(rid, text=PROMPT, data_class="confidential"))
            got = await responses.collect(lambda r: r.key == rid.encode(), 1, timeout=60)
            await responses.stop()
        assert got and json.loads(got[0].value)["status"] == "ok"
        store = await AuditStore.open(sqlite_stack.database_url)
        try:
            for _ in range(240):
                if COMPLETE <= {e.kind for e in await store.lineage(rid)}:
                    return
                await asyncio.sleep(0.25)
            raise AssertionError(f"lineage of {rid} incomplete")
        finally:
            await store.close()

    asyncio.run(run())
    return rid


@pytest.fixture
def api_url(sqlite_stack, served_request, audit_process) -> str:
    return audit_process(sqlite_stack.database_url, module="modelbus_audit.api_main").url


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(options=options,
                                  service=ChromeService("/usr/bin/chromedriver"))
        driver.set_page_load_timeout(60)
        try:
            yield driver
        finally:
            driver.quit()


def _sign_in(browser, key: str) -> None:
    field = WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "key")))
    field.send_keys(key)
    browser.find_element(By.ID, "sign-in").click()
    WebDriverWait(browser, 30).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, "[data-testid=timeline]")))


def test_lineage_page_in_headless_chromium(browser, api_url, served_request):
    browser.get(f"{api_url}/ui/requests/{served_request}")
    assert "/ui/login" in browser.current_url  # no key yet: sent to the sign-in form
    _sign_in(browser, COMPLIANCE_KEY)

    assert browser.find_element(By.CSS_SELECTOR, "[data-testid=request-id]").text == \
        served_request
    summary = lambda name: browser.find_element(
        By.CSS_SELECTOR, f"[data-testid=summary-{name}]").text
    assert (summary("tenant"), summary("team"), summary("user")) == ("acme", "support", "u1")
    assert summary("data-class") == "confidential" and summary("outcome") == "ok"
    assert summary("policy-version") not in ("", "—")
    steps = browser.find_elements(By.CSS_SELECTOR, "ol.timeline li")
    kinds = [step.get_attribute("data-kind") for step in steps]
    assert kinds[0] == "request" and kinds[-1] == "response"
    assert {"routing", "task", "attempt", "result"} <= set(kinds)
    task = steps[kinds.index("task")].text
    assert "openai/gpt-4o-mini" in task
    prompt = browser.find_element(By.CSS_SELECTOR, "[data-testid=prompt]").text
    assert "Summarise my ticket" in prompt and "[EMAIL]" in prompt
    assert "ana.maria@example.com" not in browser.page_source  # redacted before storage
    assert browser.find_elements(By.CSS_SELECTOR, "[data-testid=answer]")

    browser.find_element(By.LINK_TEXT, "Sign out").click()
    browser.get(f"{api_url}/ui/requests/{served_request}")
    _sign_in(browser, OPS_KEY)
    assert browser.find_element(By.CSS_SELECTOR, "[data-testid=text-hidden]").is_displayed()
    assert "Summarise my ticket" not in browser.page_source
    assert len(browser.find_elements(By.CSS_SELECTOR, "ol.timeline li")) == len(steps)


@pytest.mark.timeout(900)
def test_schemathesis_finds_no_server_error(api_url, tmp_path):
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{api_url}/openapi.json",
        "--checks", "not_a_server_error", "--phases", "coverage,fuzzing",
        "--max-examples", "25", "--seed", "6", "--request-timeout", "30",
    ]
    for key in (COMPLIANCE_KEY, OPS_KEY):
        result = subprocess.run(command + ["-H", f"X-API-Key: {key}"], capture_output=True,
                                text=True, timeout=800, cwd=tmp_path, check=False)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        assert "passed" in result.stdout and "generated" in result.stdout


def _modelbus(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modelbus_cli.main", "audit", *args],
                          capture_output=True, text=True, timeout=120, cwd=cwd, check=False)


def test_cli_show_search_report_export_verify(sqlite_stack, served_request, tmp_path):
    db = ["--database-url", sqlite_stack.database_url]
    show = _modelbus("show", served_request, *db, cwd=tmp_path)
    assert show.returncode == 0 and f"request {served_request}" in show.stdout
    assert "response  ok" in show.stdout
    search = _modelbus("search", "--request-id", served_request, "--json", *db, cwd=tmp_path)
    rows = [json.loads(line) for line in search.stdout.splitlines()]
    assert {r["kind"] for r in rows} >= COMPLETE
    assert "Summarise my ticket" not in search.stdout  # search lists metadata only
    report = _modelbus("report", "--team", "support", "--json", *db, cwd=tmp_path)
    usage = json.loads(report.stdout)
    assert any(r["model"] == "gpt-4o-mini" and r["team"] == "support" for r in usage)
    for fmt in ("jsonl", "csv", "parquet"):
        out = tmp_path / f"export.{fmt}"
        done = _modelbus("export", str(out), "--request-id", served_request, *db, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "exported" in done.stderr and f"rows written to {out}" in done.stderr
        assert out.stat().st_size > 0
    lines = (tmp_path / "export.jsonl").read_text().splitlines()
    assert len(lines) == len(rows)
    verify = _modelbus("verify", *db, cwd=tmp_path)
    assert verify.returncode == 0 and "audit store OK" in verify.stdout
