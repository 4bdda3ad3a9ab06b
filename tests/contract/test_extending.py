"""docs/extending.md: its worked examples run as written, and it documents every public
method of the pipeline stages and handlers."""

import os
import re

import pytest
import tornado.web

from biothings.web.handlers.base import BaseAPIHandler, BaseHandler
from biothings.web.handlers.export import ExportHandler
from biothings.web.handlers.query import BaseESRequestHandler, BiothingHandler, ESRequestHandler, QueryHandler
from biothings.web.handlers.streams import Streaming
from biothings.web.pipeline import ESQueryBackend, ESQueryBuilder, ESResultTransform
from biothings.web.settings import BiothingWebSettings
from tests import data

ROOT = data.ROOT
PAGE = open(os.path.join(ROOT, "docs", "extending.md"), encoding="utf-8").read()
EXAMPLES = dict(re.findall(r"<!-- example: (\w+) -->\n```python\n(.*?)```", PAGE, re.S))


@pytest.fixture
def example(tmp_path, serve, embedded_dir):
    """``example(name)``: the page's example ``name`` written as a config module and served."""
    def start(name):
        path = tmp_path / f"example_{name}.py"
        path.write_text(EXAMPLES[name])
        settings = BiothingWebSettings(str(path), EMBEDDED_DATA_DIR=embedded_dir, ES_HOST="")
        return settings, serve(config=settings)
    return start


def test_the_page_has_every_example():
    assert set(EXAMPLES) == {"options", "builder", "backend", "transform", "hooks", "routes"}


def test_options_example(example):
    _, client = example("options")
    cited = {doc["_id"] for doc in data.DOCS if doc.get("pubmed_count", 0) >= 500}
    found = client.get("/v1/query", params={"q": "__all__", "min_pubmed": 500, "size": 1000, "fields": "_id"}).json()
    assert {hit["_id"] for hit in found["hits"]} == cited and found["total"] == len(cited)
    refused = client.get("/v1/query", params={"q": "__all__", "min_pubmed": -1}).json()
    assert refused["code"] == 400 and refused["keyword"] == "min_pubmed" and refused["min"] == 0


def test_builder_example(example):
    _, client = example("builder")
    query = client.get("/v1/query", params={"q": "cdk2", "rawquery": 1}).json()["query"]
    assert query["query_string"]["fields"] == ["symbol^10", "name"]
    hits = client.get("/v1/query", params={"q": "cdk2", "fields": "symbol"}).json()["hits"]
    assert hits[0]["symbol"] == "CDK2"


def test_backend_example(example):
    settings, client = example("backend")
    before = len(settings.SEARCHES)
    client.get("/v1/query", params={"q": "cdk2"})
    client.post("/v1/gene", json={"ids": ["1017", "1018"]})
    assert settings.SEARCHES[before:] == [None, "gene"]


def test_transform_example(example):
    _, client = example("transform")
    doc = client.get("/v1/gene/1017").json()
    assert doc["alias_count"] == len(data.BY_ID["1017"]["alias"])


def test_hooks_example(example):
    _, client = example("hooks")
    answer = client.get("/v1/query", params={"q": "cdk2"}).json()
    assert answer["served_by"] == "BioThings API" and answer["total"] >= 1
    assert "served_by" not in client.get("/v1/gene/1017").json()


def test_routes_example(example):
    _, client = example("routes")
    response = client.get("/v1/taxa")
    taxa = {}
    for doc in data.DOCS:
        taxa[str(doc["taxid"])] = taxa.get(str(doc["taxid"]), 0) + 1
    top = dict(sorted(taxa.items(), key=lambda item: (-item[1], item[0]))[:3])
    assert response.json() == {"taxa": top}
    assert response.headers["Cache-Control"] == "max-age=60, public"
    assert client.get("/v1/taxa", params={"top": 101}).json()["max"] == 100
    assert "taxa:" in client.get("/v1/taxa", params={"format": "yaml"}).text


DOCUMENTED = (ESQueryBuilder, ESQueryBackend, ESResultTransform, BaseHandler, BaseAPIHandler,
              BaseESRequestHandler, ESRequestHandler, BiothingHandler, QueryHandler, Streaming, ExportHandler)
# tornado's RequestHandler methods and the HTTP verbs: tornado documents them
INHERITED = set(dir(tornado.web.RequestHandler)) | {"get", "post", "head", "options"}


@pytest.mark.parametrize("cls", DOCUMENTED, ids=lambda cls: cls.__name__)
def test_every_public_method_is_documented(cls):
    public = [name for name, value in vars(cls).items()
              if not name.startswith("_") and name not in INHERITED
              and (callable(value) or isinstance(value, (staticmethod, classmethod)))]
    missing = [name for name in public if f"`{name}`" not in PAGE]
    assert not missing, f"{cls.__name__}: document {missing} in docs/extending.md"
    assert f"`{cls.__name__}`" in PAGE
