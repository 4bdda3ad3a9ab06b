"""/metrics (Prometheus), the access log (text or JSON lines) and X-Request-Id."""

import json
import logging
import threading
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.servers import wait_http

ANNOTATION_ROUTE = "/v1/gene/([^/]+)/?"


def scrape(client, path="/metrics"):
    """``{(sample name, sorted labels): value}`` of a /metrics scrape."""
    response = client.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def labels(**kwargs):
    return tuple(sorted(kwargs.items()))


def test_metrics_count_requests_per_route_and_status(serve, api):
    client = serve(api.backend)
    ids = ["1017", "1018", "1019", "nope-1", "nope-2"]
    for biothing_id in ids:
        client.get(f"/v1/gene/{biothing_id}")
    for _ in range(3):
        client.get("/v1/query", params={"q": "cdk2"})
    client.get("/v1/no/such/route")
    samples = scrape(client)
    hits = samples[("biothings_http_requests_total", labels(route=ANNOTATION_ROUTE, method="GET", status="200"))]
    misses = samples[("biothings_http_requests_total", labels(route=ANNOTATION_ROUTE, method="GET", status="404"))]
    assert (hits, misses) == (3, 2)
    assert samples[("biothings_http_requests_total", labels(route="/v1/query/?", method="GET", status="200"))] == 3
    assert samples[("biothings_http_requests_total",
                    labels(route="NotFoundHandler", method="GET", status="404"))] == 1
    # route labels are URL patterns: no raw path (id) ever becomes a label value
    routes = {dict(key[1]).get("route") for key in samples if key[0] == "biothings_http_requests_total"}
    assert not any(biothing_id in route for route in routes for biothing_id in ids)
    # latency histogram per route and status
    count = samples[("biothings_http_request_duration_seconds_count",
                     labels(route=ANNOTATION_ROUTE, method="GET", status="200"))]
    inf = samples[("biothings_http_request_duration_seconds_bucket",
                   labels(route=ANNOTATION_ROUTE, method="GET", status="200", le="+Inf"))]
    assert count == inf == 3
    assert samples[("biothings_http_request_duration_seconds_sum",
                    labels(route=ANNOTATION_ROUTE, method="GET", status="200"))] > 0
    # engine latency: every query ran one search; the scrape itself is in flight
    engine = api.backend
    assert samples[("biothings_engine_duration_seconds_count", labels(engine=engine, operation="search"))] >= 8
    assert samples[("biothings_http_requests_in_flight", ())] == 1
    # the scrape before this one was counted too
    again = scrape(client)
    assert again[("biothings_http_requests_total", labels(route="/metrics", method="GET", status="200"))] == 1
    assert again[("biothings_http_requests_in_flight", ())] == 1


def test_in_flight_gauge_returns_to_zero_after_errors(serve):
    client = serve("embedded")
    client.get("/v1/query", params={"q": "cdk2", "size": "abc"})  # 400
    client.request("DELETE", "/v1/query")  # 405 before prepare
    client.post("/v1/query", data="{bad json", headers={"Content-Type": "application/json"})
    # only the scrape in progress is in flight
    assert scrape(client)[("biothings_http_requests_in_flight", ())] == 1


def test_metrics_path_setting(serve):
    moved = serve("embedded", METRICS_PATH="/internal/metrics")
    moved.get("/v1/gene/1017")
    assert moved.get("/metrics").status_code == 404
    assert scrape(moved, "/internal/metrics")[
        ("biothings_http_requests_total", labels(route=ANNOTATION_ROUTE, method="GET", status="200"))] == 1
    off = serve("embedded", METRICS_PATH="")
    assert off.get("/metrics").status_code == 404
    assert off.get("/v1/gene/1017").status_code == 200


# ------------------------------------------------------------------ request ids

def test_request_id_generated_on_every_response(api):
    seen = set()
    for method, path in [("GET", "/v1/gene/1017"), ("GET", "/v1/gene/nope"), ("GET", "/v1/query?size=x&q=a"),
                         ("DELETE", "/v1/query"), ("GET", "/nowhere"), ("GET", "/status"), ("GET", "/"),
                         ("OPTIONS", "/v1/query"), ("GET", "/metrics")]:
        response = api.request(method, path)
        request_id = response.headers.get("X-Request-Id")
        assert request_id and len(request_id) <= 128, (method, path, response.status_code)
        seen.add(request_id)
    assert len(seen) == 9  # one new id per request


def test_request_id_echoed_when_sane(api):
    for given in ("abc-123", "0f8fad5b-d9cb-469f-a165-70867728950e", "Root=1-5759e988-bd862e3f:x.y/z+w"):
        response = api.get("/v1/gene/1017", headers={"X-Request-Id": given})
        assert response.headers["X-Request-Id"] == given
    error = api.get("/v1/gene/nope", headers={"X-Request-Id": "trace-404"})
    assert error.status_code == 404 and error.headers["X-Request-Id"] == "trace-404"


@pytest.mark.parametrize("hostile", ["x" * 129, "<script>alert(1)</script>", "a b", "id;rm -rf", "é", "a\tb"])
def test_hostile_request_id_replaced(api, hostile):
    response = api.get("/v1/gene/1017", headers={"X-Request-Id": hostile.encode("utf-8")})
    assert response.status_code == 200
    assert response.headers["X-Request-Id"] not in ("", hostile)
    assert len(response.headers["X-Request-Id"]) <= 128


# ------------------------------------------------------------------ access log

class Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []
        self.guard = threading.Lock()

    def emit(self, record):
        with self.guard:
            self.records.append(record)

    def wait_for(self, predicate, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.guard:
                found = [record for record in self.records if predicate(record)]
            if found:
                return found
            time.sleep(0.02)
        raise AssertionError(f"no such log record in {[r.getMessage() for r in self.records]}")


@pytest.fixture
def access_log():
    logger = logging.getLogger("biothings.access")
    capture = Capture()
    previous = logger.level
    logger.addHandler(capture)
    logger.setLevel(logging.INFO)
    yield capture
    logger.removeHandler(capture)
    logger.setLevel(previous)


def test_json_access_log(serve, access_log):
    client = serve("embedded", ACCESS_LOG_FORMAT="json")
    client.get("/v1/gene/1017", headers={"X-Request-Id": "json-log-1", "User-Agent": "pytest-agent"})
    client.get("/v1/gene/nope", headers={"X-Request-Id": "json-log-2"})
    generated = client.get("/v1/query", params={"q": "cdk2"}).headers["X-Request-Id"]
    lines = {}
    for request_id in ("json-log-1", "json-log-2", generated):
        [record] = access_log.wait_for(lambda r, rid=request_id: rid in r.getMessage())
        lines[request_id] = (record, json.loads(record.getMessage()))
    record, line = lines["json-log-1"]
    assert record.levelno == logging.INFO
    assert line["method"] == "GET" and line["path"] == "/v1/gene/1017" and line["status"] == 200
    assert line["request_id"] == "json-log-1" and line["user_agent"] == "pytest-agent"
    assert line["remote_ip"] == "127.0.0.1" and line["route"] == ANNOTATION_ROUTE
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["time"].endswith("+00:00")
    record, line = lines["json-log-2"]
    assert record.levelno == logging.WARNING and line["status"] == 404
    assert lines[generated][1]["query"] == "q=cdk2"


def test_text_access_log_and_off(serve, access_log):
    client = serve("embedded")
    client.get("/v1/gene/1017", headers={"X-Request-Id": "text-log-1"})
    [record] = access_log.wait_for(lambda r: "text-log-1" in r.getMessage())
    assert record.getMessage().startswith("200 GET /v1/gene/1017")
    quiet = serve("embedded", ACCESS_LOG_FORMAT="off")
    quiet.get("/v1/gene/1017", headers={"X-Request-Id": "off-log-1"})
    client.get("/v1/gene/1018", headers={"X-Request-Id": "text-log-2"})  # a later line arrives...
    access_log.wait_for(lambda r: "text-log-2" in r.getMessage())
    assert not [r for r in access_log.records if "off-log-1" in r.getMessage()]  # ...this one never


def test_slow_successes_are_logged_as_warnings(serve, access_log):
    client = serve("embedded", ACCESS_LOG_SLOW_MS=0.001)
    client.get("/v1/gene/1017", headers={"X-Request-Id": "slow-log-1"})
    [record] = access_log.wait_for(lambda r: "slow-log-1" in r.getMessage())
    assert record.levelno == logging.WARNING and record.getMessage().startswith("200 GET")


def test_access_log_level_warning_keeps_errors_only(serve, access_log):
    from biothings.web import accesslog
    from biothings.web.settings import BiothingWebSettings
    access_log.records.clear()
    logger = logging.getLogger("biothings.access")
    logger.setLevel(logging.NOTSET)
    assert accesslog.configure(BiothingWebSettings("config", ACCESS_LOG_LEVEL="warning")).level == logging.WARNING
    client = serve("embedded")
    client.get("/v1/gene/1017", headers={"X-Request-Id": "level-ok"})
    client.get("/v1/gene/nope", headers={"X-Request-Id": "level-404"})
    [record] = access_log.wait_for(lambda r: "level-404" in r.getMessage())
    assert record.levelno == logging.WARNING
    assert not [r for r in access_log.records if "level-ok" in r.getMessage()]
    logger.setLevel(logging.NOTSET)
    assert accesslog.configure(BiothingWebSettings("config")).level == logging.WARNING  # the default
    logger.setLevel(logging.NOTSET)
    assert accesslog.configure(BiothingWebSettings("config", ACCESS_LOG_LEVEL="INFO")).level == logging.INFO
    logger.setLevel(logging.NOTSET)
    with pytest.raises(ValueError, match="ACCESS_LOG_LEVEL"):
        accesslog.configure(BiothingWebSettings("config", ACCESS_LOG_LEVEL="loud"))


def test_bad_access_log_format_is_refused(serve):
    from biothings.web.settings import BiothingWebSettings
    with pytest.raises(ValueError, match="ACCESS_LOG_FORMAT"):
        BiothingWebSettings("config", ACCESS_LOG_FORMAT="xml").get_app()


# ------------------------------------------------------------------ several processes

def test_metrics_sum_over_worker_processes(tmp_path):
    from tests.server.test_index_cli import start, stop
    process, url = start(tmp_path, "--processes=2")
    try:
        wait_http(url + "/status", timeout=60)
        session = requests.Session()
        for _ in range(12):
            # new connections: requests spread over the workers
            assert requests.get(url + "/v1/gene/1017", timeout=10).status_code == 200
        for _ in range(4):  # whichever worker answers the scrape, it reports every worker
            text = session.get(url + "/metrics", timeout=10).text
            families = {f.name: f for f in text_string_to_metric_families(text)}
            total = sum(s.value for s in families["biothings_http_requests"].samples
                        if s.name.endswith("_total") and s.labels.get("route") == ANNOTATION_ROUTE)
            assert total == 12
            session.close()
            session = requests.Session()
    finally:
        assert stop(process) == 0
    output = process.stdout.read().decode()
    assert "Traceback" not in output, output


def test_metrics_on_an_address_of_their_own(serve):
    from tests.servers import free_port
    port = free_port()
    client = serve("embedded", METRICS_ADDRESS=f"127.0.0.1:{port}")
    assert client.get("/v1/gene/1017").status_code == 200
    assert client.get("/metrics").status_code == 404  # not on the API's port
    scraper = type(client)(f"http://127.0.0.1:{port}", client.backend)
    samples = scrape(scraper)
    assert samples[("biothings_http_requests_total", labels(route=ANNOTATION_ROUTE, method="GET", status="200"))] == 1
