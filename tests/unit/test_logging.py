"""The engine client's own request logging and JSON serializers."""

import logging

from biothings.web.engines.elasticsearch import ElasticsearchEngine


def test_elasticsearch_client_uses_orjson_and_logs_warnings_only():
    engine = ElasticsearchEngine(["http://127.0.0.1:9"])
    serializers = engine.client.transport.serializers.serializers
    for mimetype in ("application/json", "application/vnd.elasticsearch+json"):
        assert serializers[mimetype].json_loads.__func__.__qualname__.startswith("OrjsonSerializer")
        assert serializers[mimetype].loads(serializers[mimetype].dumps({"a": [1]})) == {"a": [1]}
    for mimetype in ("application/x-ndjson", "application/vnd.elasticsearch+x-ndjson"):
        assert serializers[mimetype].json_loads.__func__.__qualname__.startswith("_OrjsonNdjson")
        assert serializers[mimetype].loads(serializers[mimetype].dumps([{}, {"a": 1}])) == [{}, {"a": 1}]
    assert logging.getLogger("elastic_transport.transport").getEffectiveLevel() >= logging.WARNING
