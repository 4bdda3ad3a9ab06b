"""The access log (``ACCESS_LOG``) and the engine client's request logging."""

import logging

import pytest

from biothings.web.settings import BiothingWebSettings


class _Request:
    def __init__(self, elapsed):
        self.elapsed = elapsed

    def request_time(self):
        return self.elapsed


class _Handler:
    def __init__(self, status, elapsed=0.001):
        self.status = status
        self.request = _Request(elapsed)

    def get_status(self):
        return self.status

    def _request_summary(self):
        return "GET /v1/query?q=x (127.0.0.1)"


def _app(**settings):
    return BiothingWebSettings(None, ES_INDICES={"gene": "genes"}, **settings).get_app()


def _logged(caplog, app, handler):
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tornado.access"):
        app.log_request(handler)
    return [record for record in caplog.records if record.name == "tornado.access"]


def test_access_log_errors_mode_is_the_default(caplog):
    app = _app()
    assert _logged(caplog, app, _Handler(200)) == []
    assert _logged(caplog, app, _Handler(304)) == []
    [record] = _logged(caplog, app, _Handler(404))
    assert record.levelno == logging.WARNING and "404 GET /v1/query?q=x" in record.getMessage()
    [record] = _logged(caplog, app, _Handler(503))
    assert record.levelno == logging.ERROR
    # slow successes are logged too
    [record] = _logged(caplog, app, _Handler(200, elapsed=2.5))
    assert "2500.00ms" in record.getMessage()


def test_access_log_all_and_none(caplog):
    assert len(_logged(caplog, _app(ACCESS_LOG="all"), _Handler(200))) == 1
    assert _logged(caplog, _app(ACCESS_LOG="none"), _Handler(500)) == []
    assert _logged(caplog, _app(ACCESS_LOG="errors", ACCESS_LOG_SLOW_MS=0), _Handler(200, 9.0)) == []
    with pytest.raises(ValueError):
        _app(ACCESS_LOG="sometimes")


def test_elasticsearch_client_uses_orjson_and_logs_warnings_only():
    from biothings.web.engines.elasticsearch import ElasticsearchEngine
    engine = ElasticsearchEngine(["http://127.0.0.1:9"])
    serializers = engine.client.transport.serializers.serializers
    for mimetype in ("application/json", "application/vnd.elasticsearch+json"):
        assert serializers[mimetype].json_loads.__func__.__qualname__.startswith("OrjsonSerializer")
        assert serializers[mimetype].loads(serializers[mimetype].dumps({"a": [1]})) == {"a": [1]}
    for mimetype in ("application/x-ndjson", "application/vnd.elasticsearch+x-ndjson"):
        assert serializers[mimetype].json_loads.__func__.__qualname__.startswith("_OrjsonNdjson")
        assert serializers[mimetype].loads(serializers[mimetype].dumps([{}, {"a": 1}])) == [{}, {"a": 1}]
    assert logging.getLogger("elastic_transport.transport").getEffectiveLevel() >= logging.WARNING
