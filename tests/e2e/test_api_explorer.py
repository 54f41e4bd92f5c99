"""The API explorer at /docs: Swagger UI over the generated openapi.json, served by Envoy,
driven in headless chromium as a developer would use it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Page

from server.package_data import OPENAPI
from tests.e2e.browser import chromium
from tests.e2e.service import DEMO_CREDENTIALS, ServiceProcess, http
from tests.e2e.test_rest import DOCUMENTED, SEED_BODY

ROOT = Path(__file__).parents[2]
TIMEOUT_MS = 15_000
# Where the create's block stands on the page, down to the end of the response it shows.
CREATE_ON_PAGE = """() => {
  const block = document.getElementById("operations-ConversationService-CreateConversation");
  const top = block.getBoundingClientRect();
  const end = block.querySelector(".live-responses-table").getBoundingClientRect();
  return {x: top.left, y: top.top + window.scrollY, width: top.width, height: end.bottom - top.top};
}"""


@pytest.fixture(scope="module")
def page(rest: ServiceProcess) -> Iterator[tuple[Page, list[str]]]:
    """The explorer, loaded, and the errors its console and scripts report."""
    with chromium() as browser:
        page = browser.new_page()
        errors: list[str] = []

        def console(message: ConsoleMessage) -> None:
            if message.type == "error":
                errors.append(message.text)

        page.on("console", console)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(rest.base_url + "/docs")
        page.wait_for_selector(".opblock", timeout=TIMEOUT_MS)
        yield page, errors


def operation_ids() -> set[str]:
    """The element id Swagger UI gives each operation of openapi.json."""
    document = json.loads(OPENAPI.read_text())
    return {
        f"operations-{operation['tags'][0]}-{operation['operationId']}"
        for methods in document["paths"].values()
        for operation in methods.values()
    }


def authorize(page: Page, key_id: str, secret: str) -> None:
    """The Authorize button: HTTP Basic credentials for every call the page makes."""
    page.click(".auth-wrapper .authorize")
    page.fill(".modal-ux input[type=text]", key_id)
    page.fill(".modal-ux input[type=password]", secret)
    page.click(".modal-ux .auth-btn-wrapper .authorize")
    page.click(".modal-ux .btn-done")


def try_out(
    page: Page, operation: str, parameters: dict[str, str], body: str | None = None
) -> tuple[int, str]:
    """Try it out: the status and body of the response the page shows."""
    block = page.locator(f"[id='{operation}']")
    block.locator(".opblock-summary").click()
    block.locator(".try-out__btn").click()
    for name, value in parameters.items():
        block.locator(f"tr[data-param-name='{name}'] input").fill(value)
    if body is not None:
        block.locator("textarea.body-param__text").fill(body)
    block.locator(".execute").click()
    response = block.locator(".live-responses-table .response")
    response.wait_for(timeout=TIMEOUT_MS)
    status = int(response.locator(".response-col_status").inner_text().strip())
    return status, response.locator(".response-col_description pre").first.inner_text()


def test_docs_is_served_by_envoy_with_the_openapi_description(rest: ServiceProcess) -> None:
    page = http("GET", rest.base_url + "/docs")
    described = http("GET", rest.base_url + "/docs/openapi.json")

    assert page.status == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["x-request-id"]
    assert described.body == OPENAPI.read_bytes()
    # Envoy answers, and they are no refusals: neither the gRPC server nor the log of what
    # Envoy refuses (written within a second) sees them.
    time.sleep(2)
    assert "/docs" not in rest.log()


EXPLORER_FILES = (
    "/docs",
    "/docs/explorer.js",
    "/docs/openapi.json",
    "/docs/swagger-ui.css",
    "/docs/swagger-ui-bundle.js",
)


@pytest.mark.parametrize("path", EXPLORER_FILES)
def test_every_file_of_the_explorer_is_sent_with_its_security_headers(
    rest: ServiceProcess, path: str
) -> None:
    """Scripts from this origin only (no inline script), never framed, never sniffed."""
    answer = http("GET", rest.base_url + path)

    assert answer.status == 200
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in answer.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    assert policy["script-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["referrer-policy"] == "no-referrer"


def test_the_page_runs_a_current_swagger_ui_under_its_policy(
    page: tuple[Page, list[str]],
) -> None:
    """Swagger UI 5 (not the 4.15.5 of the old bundle), started by a script the policy allows:
    a refused script would leave no operations and a console error."""
    browser_page, errors = page

    version = browser_page.evaluate("() => window.versions.swaggerUI.version")

    assert int(version.split(".")[0]) >= 5, version
    assert browser_page.locator(".opblock").count() > 0
    assert errors == []


def test_the_page_lists_every_operation_without_a_console_error(
    page: tuple[Page, list[str]], screenshots: Path
) -> None:
    browser_page, errors = page
    shown = {element.get_attribute("id") for element in browser_page.query_selector_all(".opblock")}

    assert shown == operation_ids()
    assert browser_page.locator(".auth-wrapper .authorize").is_visible()
    assert errors == []
    browser_page.screenshot(path=screenshots / "api-explorer.png")


def test_create_read_and_list_through_the_page_with_the_demo_key(
    page: tuple[Page, list[str]], screenshots: Path
) -> None:
    browser_page, errors = page
    authorize(browser_page, *DEMO_CREDENTIALS)

    status, text = try_out(
        browser_page,
        "operations-ConversationService-CreateConversation",
        {"trkref": "D10"},
        json.dumps(SEED_BODY, indent=2),
    )
    created = json.loads(text)
    read_status, read = try_out(
        browser_page,
        "operations-ConversationService-GetConversation",
        {"id": str(created["id"]), "trkref": "D10"},
    )
    list_status, listed = try_out(
        browser_page,
        "operations-ConversationService-ListConversations",
        {"trkref": "D10", "sku": SEED_BODY["sku"]},
    )

    assert status == 200
    assert list(created) == list(DOCUMENTED)
    assert {k: v for k, v in created.items() if k not in ("id", "created_at")} == {
        k: v for k, v in DOCUMENTED.items() if k not in ("id", "created_at")
    }
    assert (read_status, json.loads(read)) == (200, created)
    assert list_status == 200
    assert json.loads(listed)["conversations"] == [created]
    assert errors == []
    # The key's secret stays in the page's memory: nothing of it in the browser's storage.
    stored = browser_page.evaluate("() => JSON.stringify(Object.assign({}, localStorage))")
    assert DEMO_CREDENTIALS[1] not in stored
    assert "authorized" not in json.loads(stored)
    # The create: its request, and the response the page shows, down to its headers.
    clip = browser_page.evaluate(CREATE_ON_PAGE)
    browser_page.screenshot(path=screenshots / "api-explorer-create.png", clip=clip, full_page=True)
