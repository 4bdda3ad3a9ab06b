"""A reload is seen at once: /metadata, the field list and ETags follow a new build
within METADATA_CHECK_INTERVAL, on every backend (embedded build swap, alias move)."""

import json

import pytest

from biothings.web.load import load
from tests import data
from tests.conftest import BACKENDS, fresh_index_settings
from tests.servers import wait_for

# the full refresh would only come after METADATA_REFRESH_INTERVAL (set far away here)
NO_FULL_REFRESH = 3600


def write_ndjson(path, docs):
    path.write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    return str(path)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_reload_is_seen_at_once(backend, request, serve, tmp_path):
    settings = fresh_index_settings(backend, request, tmp_path, "reload",
                                    METADATA_REFRESH_INTERVAL=NO_FULL_REFRESH)
    mapping = json.loads(open(data.MAPPING_PATH).read())
    load(settings, data.DOCUMENTS_PATH, mapping=mapping, meta=dict(data.META), progress=False)
    client = serve(config=settings)
    before = client.get("/v1/metadata").json()
    assert before["stats"]["total"] == len(data.DOCS)
    old = client.get("/v1/gene/1017")
    etag = old.headers["Etag"]
    assert client.get("/v1/gene/1017", headers={"If-None-Match": etag}).status_code == 304

    fewer = [dict(doc, reload_marker="second build") for doc in data.DOCS[:100]]
    assert any(doc["_id"] == "1017" for doc in fewer)
    mapping["properties"]["reload_marker"] = {"type": "keyword"}
    load(settings, write_ndjson(tmp_path / "fewer.ndjson", fewer), mapping=mapping,
         meta=dict(data.META, build_version="second"), progress=False, allow_shrink=True)

    after = wait_for(lambda: (lambda m: m if m["stats"]["total"] == 100 else None)(client.get("/v1/metadata").json()))
    assert after and after["build_version"] == "second", "the reload was not seen"
    assert "reload_marker" in client.get("/v1/metadata/fields").json()
    revalidated = client.get("/v1/gene/1017", headers={"If-None-Match": etag})
    assert revalidated.status_code == 200 and revalidated.headers["Etag"] != etag
    assert revalidated.json()["reload_marker"] == "second build"
