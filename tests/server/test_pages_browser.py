"""The front page and the interactive docs, end to end in headless Chromium (Playwright).

Needs Debian's ``chromium`` (``apt-get install -y chromium``) and ``playwright`` (test
extras; no ``playwright install``: the system browser is used). Without a browser
these tests skip, unless ``BIOTHINGS_REQUIRE_BROWSER=1`` (set by ``.ci/run``), which
turns the skip into a failure.
"""

import json
import os
import shutil

import pytest

from biothings.web.settings import BiothingWebSettings

REQUIRE_BROWSER = os.environ.get("BIOTHINGS_REQUIRE_BROWSER", "").strip().lower() in ("1", "true", "yes")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 15000


def chromium_path():
    for candidate in (os.environ.get("BIOTHINGS_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def _unavailable():
    """Why no browser test can run here, or ``None``."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    if chromium_path() is None:
        return "chromium is not installed (apt-get install -y chromium)"
    return None


@pytest.fixture(scope="module")
def browser():
    missing = _unavailable()
    if missing:
        if REQUIRE_BROWSER:
            pytest.fail(f"BIOTHINGS_REQUIRE_BROWSER is set but {missing}", pytrace=False)
        pytest.skip(f"browser tests need a browser: {missing}")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    """A fresh page; fails the test on a script error, a console error or a request off the host."""
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    problems = []
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    # API answers with 4xx are part of some tests (fetch); a page or asset that fails is not
    tab.on("console", lambda message: problems.append(f"console {message.type}: {message.text}")
           if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
    tab.on("response", lambda response: problems.append(f"{response.status} {response.url}")
           if response.status >= 400 and response.request.resource_type not in ("fetch", "xhr") else None)
    tab.on("request", lambda request: problems.append(f"request off the host: {request.url}")
           if not request.url.startswith(("http://127.0.0.1", "data:", "about:")) else None)
    yield tab
    context.close()
    assert not problems, problems


def _embedded_api(serve):
    return serve("embedded")


def test_front_page_title_types_routes(page, serve):
    client = _embedded_api(serve)
    page.goto(client.url + "/")
    assert page.title() == "Demo Gene API"
    assert page.locator("h1#title").inner_text() == "Demo Gene API"
    assert page.locator("ul.types li").all_inner_texts() == ["gene"]
    routes = page.locator("table.routes").inner_text()
    assert "/v1/query" in routes and "/v1/gene/{id}" in routes and "/v1/metadata" in routes
    assert page.locator("#endpoint").is_hidden()  # one API, one type: nothing to choose


def test_front_page_query_shows_hits_and_facets(page, serve):
    client = _embedded_api(serve)
    page.goto(client.url + "/")
    # facet fields come from /metadata/fields (keyword fields)
    page.wait_for_selector("#facet-fields option[value='type_of_gene']", state="attached")
    options = page.locator("#facet-fields option").all_inner_texts()
    assert "type_of_gene" in options and "symbol" not in options  # symbol is a text field
    page.fill("#q", "cdk2")
    page.select_option("#facet-fields", ["type_of_gene"])
    page.click("#submit")
    page.wait_for_selector("#hits .hit")
    first = page.locator("#hits .hit").first
    assert "CDK2" in first.inner_text()
    assert first.locator("a.hit-id").get_attribute("href") == "/v1/gene/1017"
    assert "hit" in page.locator("#summary").inner_text()
    facet = page.locator("#facets [data-facet='type_of_gene']")
    facet.wait_for()
    assert "protein-coding" in facet.inner_text()
    assert page.url.endswith("/?q=cdk2")  # a search is linkable

    # a facet term narrows the hits
    page.fill("#q", "__all__")
    page.click("#submit")
    page.locator("#facets [data-facet='type_of_gene'] button.term", has_text="ncRNA").first.click()
    page.wait_for_selector("#summary .chip")
    assert 'type_of_gene:"ncRNA"' in page.locator("#summary").inner_text()
    total = int(page.locator("#summary").inner_text().split()[0])
    expected = client.get("/v1/query", params={"q": "__all__", "filter": 'type_of_gene:"ncRNA"',
                                               "size": 0}).json()["total"]
    assert total == expected and 0 < total < 1965

    # paging
    page.fill("#filter", "")
    page.click("#submit")
    page.wait_for_selector("#pager:not([hidden])")
    first_id = page.locator("#hits .hit a.hit-id").first.inner_text()
    page.click("#next")
    # a locator wait, not wait_for_function: the page's CSP forbids the eval that one needs
    from playwright.sync_api import expect
    expect(page.locator("#summary")).to_contain_text("showing 11-20")
    assert page.locator("#hits .hit a.hit-id").first.inner_text() != first_id


def test_front_page_reports_errors(page, serve):
    client = _embedded_api(serve)
    page.goto(client.url + "/")
    page.fill("#q", "symbol:(")
    page.click("#submit")
    page.wait_for_selector("#summary.err")
    assert page.locator("#summary").inner_text().startswith("Error 400")


def test_front_page_runs_query_from_its_address(page, serve):
    client = _embedded_api(serve)
    page.goto(client.url + "/?q=symbol:CDK2")
    page.wait_for_selector("#hits .hit")
    assert page.locator("#q").input_value() == "symbol:CDK2"
    assert "CDK2" in page.locator("#hits").inner_text()


HOSTILE = '<img src=x onerror="window.pwned=1"></script><script>window.pwned=2</script>'


def test_front_page_escapes_hostile_strings(page, serve):
    client = serve("embedded", API_NAME=HOSTILE, API_DESCRIPTION=HOSTILE)
    hostile_hit = {"_id": HOSTILE, "_score": 1.0, "symbol": HOSTILE, "name": "<b>bold</b>"}
    hostile_answer = {"took": 1, "total": 1, "max_score": 1.0, "hits": [hostile_hit],
                      "facets": {HOSTILE: {"_type": "terms", "terms": [{"term": HOSTILE, "count": 1}],
                                           "other": 0, "missing": 0, "total": 1}}}
    hostile_fields = {HOSTILE: {"type": "keyword", "index": True}, "type_of_gene": {"type": "keyword"}}

    def fake(route):
        body = hostile_fields if "/metadata/fields" in route.request.url else hostile_answer
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    page.route("**/v1/query?**", fake)
    page.route("**/v1/metadata/fields", fake)
    page.goto(client.url + "/")
    assert page.locator("h1#title").inner_text() == HOSTILE
    assert page.title() == HOSTILE
    page.wait_for_selector("#facet-fields option", state="attached")
    assert HOSTILE in page.locator("#facet-fields option").all_inner_texts()
    page.fill("#q", HOSTILE)
    page.click("#submit")
    page.wait_for_selector("#hits .hit")
    assert HOSTILE in page.locator("#hits .hit").inner_text()
    assert page.locator("#hits b").count() == 0 and page.locator("#hits img, #facets img, h1 img").count() == 0
    assert page.locator("#facets section h3").inner_text() == HOSTILE
    assert page.evaluate("window.pwned") is None


def test_docs_page_renders_spec_and_try_it(page, serve):
    client = _embedded_api(serve)
    page.goto(client.url + "/")
    page.click("a.docs-link")
    page.wait_for_url("**/v1/docs")
    assert page.locator("h1#title").inner_text() == "Demo Gene API"
    page.wait_for_selector("details.op")
    assert "Human genes" in page.locator("#description").inner_text()

    # GET one document by id
    operation = page.locator("details#get_v1_gene_id")
    operation.locator("summary").click()
    assert "One gene by id" in operation.locator("summary").inner_text()
    operation.locator("input[name='id']").fill("1017")
    operation.locator("input[name='fields']").fill("symbol,name")
    operation.locator("button.send").click()
    operation.locator(".status", has_text="200").wait_for()
    answer = json.loads(operation.locator("pre.response").inner_text())
    assert answer["_id"] == "1017" and answer["symbol"] == "CDK2"
    assert operation.locator(".url").inner_text() == "GET /v1/gene/1017?fields=symbol%2Cname"

    # the app-declared option is documented, and works
    query = page.locator("details#get_v1_query")
    query.locator("summary").click()
    assert "species" in query.locator("table.params").inner_text()
    query.locator("input[name='q']").fill("cdk2")
    query.locator("input[name='species']").fill("human")
    query.locator("input[name='facets']").fill("type_of_gene")
    query.locator("button.send").click()
    query.locator(".status", has_text="200").wait_for()
    answer = json.loads(query.locator("pre.response").inner_text())
    assert answer["hits"][0]["symbol"] == "CDK2" and "type_of_gene" in answer["facets"]

    # POST with a JSON body, then with a form
    batch = page.locator("details#post_v1_query")
    batch.locator("summary").click()
    assert json.loads(batch.locator("textarea.body").input_value()) == {"q": []}
    batch.locator("textarea.body").fill(json.dumps({"q": ["CDK2", "NOPE_NOT_A_GENE"], "scopes": ["symbol"]}))
    batch.locator("button.send").click()
    batch.locator(".status", has_text="200").wait_for()
    answer = json.loads(batch.locator("pre.response").inner_text())
    assert answer[0]["query"] == "CDK2" and answer[0]["_id"] == "1017"
    assert answer[-1] == {"query": "NOPE_NOT_A_GENE", "notfound": True}
    batch.locator("select.body-type").select_option("application/x-www-form-urlencoded")
    batch.locator("textarea.body").fill("q=CDK2,BRCA1&scopes=symbol&fields=symbol")
    batch.locator("button.send").click()
    batch.locator("pre.response", has_text="BRCA1").wait_for()
    answer = json.loads(batch.locator("pre.response").inner_text())
    assert [hit["symbol"] for hit in answer] == ["CDK2", "BRCA1"]

    # an error answer is shown as such
    one = page.locator("details#get_v1_gene_id")
    one.locator("input[name='id']").fill("no-such-gene")
    one.locator("button.send").click()
    one.locator(".status.err", has_text="404").wait_for()


def test_front_page_of_config_package(page, serve, embedded_dir):
    settings = BiothingWebSettings("tests.configs.multiapi", EMBEDDED_DATA_DIR=embedded_dir, ES_HOST="")
    client = serve(config=settings)
    page.goto(client.url + "/")
    assert page.locator("h1#title").inner_text() == "Two APIs"
    assert page.locator("section.api h2").all_inner_texts() == ["First API", "Second API"]
    assert page.locator("#endpoint").is_visible()
    page.select_option("#endpoint", label="Second API")
    page.fill("#q", "symbol:CDK2")
    page.click("#submit")
    page.wait_for_selector("#hits .hit")
    assert page.locator("#hits a.hit-id").first.get_attribute("href") == "/second/v1/thing/1017"
    page.goto(client.url + "/second/v1/docs")
    page.wait_for_selector("details#get_second_v1_thing_id")
    assert page.locator("details#get_second_v1_gene_id").count() == 0
