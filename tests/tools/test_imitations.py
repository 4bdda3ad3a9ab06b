"""The loopback engines the suite starts answer as the servers they imitate."""

import pytest
import requests

from tests.conftest import NOIDA


def test_osmem_identifies_as_opensearch(os_url):
    info = requests.get(os_url + "/", timeout=10).json()
    assert info["version"]["distribution"] == "opensearch"
    assert int(info["version"]["number"].split(".")[0]) >= 2


@pytest.mark.skipif(not NOIDA, reason="BIOTHINGS_TEST_ES_HOST names a real Elasticsearch, not noida-db")
def test_noida_identifies_as_elasticsearch_8(es_url):
    info = requests.get(es_url + "/", timeout=10).json()
    assert "distribution" not in info["version"] or info["version"]["distribution"] != "opensearch"
    assert info["version"]["number"].startswith("8.")
