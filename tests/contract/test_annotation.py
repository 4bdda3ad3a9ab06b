"""Annotation routes: GET /v1/gene/<id> and POST /v1/gene."""

from tests import data


def test_get_one_document(api):
    response = api.get("/v1/gene/1017")
    assert response.status_code == 200
    doc = response.json()
    expected = data.BY_ID["1017"]
    assert doc["_id"] == "1017"
    assert doc["symbol"] == expected["symbol"] == "CDK2"
    assert doc["name"] == expected["name"]
    assert doc["entrezgene"] == 1017
    assert "_version" in doc and "_score" not in doc
    assert doc["genomic_pos"]["start"] == expected["genomic_pos"]["start"]


def test_get_fields_and_exclusions(api):
    doc = api.get("/v1/gene/1017", params={"fields": "symbol,name"}).json()
    assert set(doc) - {"_id", "_version"} == {"symbol", "name"}
    doc = api.get("/v1/gene/1017", params={"fields": "-go,-alias"}).json()
    assert "go" not in doc and "alias" not in doc and doc["symbol"] == "CDK2"
    doc = api.get("/v1/gene/1017", params={"fields": "genomic_pos.start"}).json()
    assert doc["genomic_pos"] == {"start": data.BY_ID["1017"]["genomic_pos"]["start"]}


def test_get_missing_is_404_json(api):
    response = api.get("/v1/gene/this-id-does-not-exist")
    assert response.status_code == 404
    assert response.json() == {"code": 404, "success": False, "error": "Not Found."}
    assert "Cache-Control" not in response.headers


def test_get_field_prefixed_id(api):
    doc = api.get("/v1/gene/symbol:CDK2", params={"fields": "symbol"}).json()
    assert doc["_id"] == "1017"


def test_get_not_a_field_prefix_is_plain_id(api):
    # "nosuchfield" is not a field of the mapping: the whole string is the id
    response = api.get("/v1/gene/nosuchfield:1017")
    assert response.status_code == 404
    assert response.json() == {"code": 404, "success": False, "error": "Not Found."}


def test_get_regex_scope(api):
    gene = data.BY_ID["1017"]["ensembl"]["gene"]
    doc = api.get(f"/v1/gene/{gene}", params={"fields": "ensembl"}).json()
    assert doc["_id"] == "1017"


def test_get_several_matches_is_a_list(api):
    chromosome_21 = data.ids_where(lambda d: d.get("map_location") == "21q22.3")
    assert len(chromosome_21) > 1
    response = api.get("/v1/gene/map_location:21q22.3", params={"fields": "symbol"})
    docs = response.json()
    assert isinstance(docs, list)
    assert {doc["_id"] for doc in docs} == chromosome_21


def test_post_batch_in_input_order(api):
    response = api.post("/v1/gene", json={"ids": ["1017", 1018, "nope"]}, params={"fields": "symbol"})
    assert response.status_code == 200
    hits = response.json()
    assert [hit["query"] for hit in hits] == ["1017", 1018, "nope"]  # the JSON int stays an int
    assert hits[0]["_id"] == "1017" and hits[0]["symbol"] == "CDK2"
    assert hits[1]["_id"] == "1018" and hits[1]["symbol"] == data.BY_ID["1018"]["symbol"]
    assert hits[2] == {"query": "nope", "notfound": True}
    assert "Cache-Control" not in response.headers


def test_post_ids_from_form_and_query_string(api):
    form = api.post("/v1/gene", data={"ids": "1017,1018", "fields": "symbol"}).json()
    assert [hit["_id"] for hit in form] == ["1017", "1018"]
    query = api.post("/v1/gene?ids=1017%201018&fields=symbol").json()
    assert [hit["_id"] for hit in query] == ["1017", "1018"]


def test_post_yaml_body(api):
    body = "ids:\n  - '1017'\n  - '1018'\nfields: symbol\n"
    hits = api.post("/v1/gene", data=body, headers={"Content-Type": "application/yaml"}).json()
    assert [hit["_id"] for hit in hits] == ["1017", "1018"]


def test_post_without_ids_is_400(api):
    response = api.post("/v1/gene", json={})
    assert response.status_code == 400
    assert response.json()["missing"] == "id"


def test_post_invalid_json(api):
    response = api.post("/v1/gene", data="{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json() == {"code": 400, "success": False, "error": "Invalid JSON body."}


def test_post_raw_batch(api):
    raw = api.post("/v1/gene", json={"ids": ["1017", "nope"], "raw": True}).json()
    assert isinstance(raw, list) and len(raw) == 2
    assert raw[0]["hits"]["hits"][0]["_id"] == "1017"
    assert raw[1]["hits"]["hits"] == []


def test_license_on_source_nodes(api):
    doc = api.get("/v1/gene/1017").json()
    assert doc["ensembl"]["_license"] == data.META["src"]["ensembl"]["license_url"]
    assert doc["go"]["_license"] == data.META["src"]["go"]["license_url_short"]


def test_license_transform_puts_a_sources_license_on_other_paths(serve):
    ensembl = data.META["src"]["ensembl"]["license_url"]
    go = data.META["src"]["go"]["license_url_short"]
    client = serve("embedded", LICENSE_TRANSFORM={"genomic_pos": "ensembl", "go.BP": "go", "MIM": "go",
                                                  "nosuchfield": "go", "chromosome": "nosuchsource"})
    doc = client.get("/v1/gene/1017").json()
    assert doc["genomic_pos"]["_license"] == ensembl  # an object
    assert doc["go"]["BP"] and all(item["_license"] == go for item in doc["go"]["BP"])  # a dotted path, a list
    assert doc["MIM"] == data.BY_ID["1017"]["MIM"] and doc["chromosome"] == "12"  # values carry none
    assert "nosuchfield" not in doc
    hit = client.get("/v1/query", params={"q": "symbol:CDK2", "fields": "genomic_pos.chr"}).json()["hits"][0]
    assert hit["genomic_pos"] == {"_license": ensembl, "chr": "12"}
    plain = serve("embedded").get("/v1/gene/1017").json()
    assert "_license" not in plain["genomic_pos"] and "_license" not in plain["go"]["BP"][0]
