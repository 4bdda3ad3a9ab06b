"""Config mistakes are errors at start-up, naming the setting; defaults are never shared."""

import pytest

from biothings.web.settings import BiothingWebSettings, SettingsError, default, parse_es_hosts
from tests.apps import custom_handlers


def config_file(tmp_path, text, name="myconf.py"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("line, words", [
    ('ES_QUERY_BUILDR = "x"', ["unknown setting ES_QUERY_BUILDR", "did you mean ES_QUERY_BUILDER?"]),
    ('CACHE_MAX_AGES = 5', ["unknown setting CACHE_MAX_AGES", "did you mean CACHE_MAX_AGE?"]),
    ('SPECIES_TAXIDS = {}', ["unknown setting SPECIES_TAXIDS", "APP_SETTINGS"]),
    ('CACHE_MAX_AGE = "1 week"', ["CACHE_MAX_AGE must be int, not str"]),
    ('ALLOW_RAW = 1', ["ALLOW_RAW must be bool, not int"]),
    ('ES_INDICES = ["genes"]', ["ES_INDICES must be dict, not list"]),
    ('MAX_BODY_SIZE = 1.5', ["MAX_BODY_SIZE must be int, not float"]),
    ('ES_HOST = 9200', ["ES_HOST must be str or list, not int"]),
    ('API_NAME = None', ["API_NAME must be str, not NoneType"]),
])
def test_unknown_names_and_wrong_types_are_errors(tmp_path, line, words):
    with pytest.raises(SettingsError) as error:
        BiothingWebSettings(config_file(tmp_path, line + "\n"))
    message = str(error.value)
    assert message.startswith("myconf.py: ")
    for word in words:
        assert word in message


@pytest.mark.parametrize("line", [
    'ES_REQUEST_TIMEOUT = 2.5', 'ES_REQUEST_TIMEOUT = 3', 'ES_HOST = ["http://a:9200", "http://b:9200"]',
    'ANNOTATION_DEFAULT_SCOPES = ("_id", "symbol")', 'APP_SETTINGS = ["MY_THING"]\nMY_THING = {"a": 1}',
    '_PRIVATE_HELPER = 3', 'THING_KWARGS = {"GET": {"n": {"type": int}}}', 'LOGGING_LEVEL = 10',
])
def test_right_types_and_declared_names_pass(tmp_path, line):
    settings = BiothingWebSettings(config_file(tmp_path, line + "\n"))
    if "MY_THING" in line:
        assert settings.MY_THING == {"a": 1}


def test_keyword_arguments_are_checked_too():
    with pytest.raises(SettingsError, match="did you mean ES_INDICES"):
        BiothingWebSettings("config", ES_INDICEZ={"gene": "genes"})


@pytest.mark.parametrize("spec, words", [
    ({"type": "int", "maximum": 5}, ["unknown key 'maximum'", "did you mean 'max'?"]),
    ({"typ": int}, ["unknown key 'typ'", "did you mean 'type'?"]),
    ({"type": "int"}, ["has type 'int'", "write int, the class, not 'int'"]),
    ({"type": dict}, ["one of str, int, float, bool, list"]),
    ({"type": str, "max": 5}, ["of type str cannot have 'max'"]),
    ({"type": bool, "min": 0}, ["of type bool cannot have 'min'"]),
    ({"type": list, "min": 1}, ["of type list cannot have 'min'"]),
    ({"type": int, "max": "5"}, ["'max' must be a number"]),
    ({"type": str, "enum": "json"}, ["'enum' must be a list"]),
    ({"type": str, "alias": 3}, ["'alias' must be a name or a list of names"]),
    ("int", ["must be a dict"]),
])
def test_option_declarations_are_checked_at_start_up(tmp_path, spec, words):
    text = f'from biothings.web.settings.default import QUERY_KWARGS\nQUERY_KWARGS["GET"]["n"] = {spec!r}\n'
    text = text.replace("<class '", "").replace("'>", "")  # {'type': int}, the class, in the source
    with pytest.raises(SettingsError) as error:
        BiothingWebSettings(config_file(tmp_path, text))
    message = str(error.value)
    assert "QUERY_KWARGS['GET']" in message and "'n'" in message
    for word in words:
        assert word in message, message


def test_a_declared_int_with_max_is_enforced(serve, tmp_path):
    client = serve("embedded", QUERY_KWARGS={**default.QUERY_KWARGS, "GET": {
        **default.QUERY_KWARGS["GET"], "n": {"type": int, "max": 5}}})
    at_max = client.get("/v1/query", params={"q": "symbol:cdk2", "n": 5})
    assert at_max.status_code == 200 and [hit["_id"] for hit in at_max.json()["hits"]] == ["1017"]
    body = client.get("/v1/query", params={"q": "cdk2", "n": 6}).json()
    assert body["code"] == 400 and body["keyword"] == "n" and body["max"] == 5 and body["num"] == 6


def test_option_names_that_are_dict_methods_work_over_http(api, serve):
    query_kwargs = default.QUERY_KWARGS
    query_kwargs["GET"]["get"] = {"type": str}  # the pipeline itself must never call options.get
    client = serve(api.backend, APP_LIST=custom_handlers.APP_LIST, ECHO_KWARGS=custom_handlers.ECHO_KWARGS,
                   QUERY_KWARGS=query_kwargs)
    echoed = client.get("/v1/echo", params={"values": "a,b", "keys": "1", "items": "4", "get": "g"}).json()
    assert echoed == {"values": ["a", "b"], "keys": True, "items": 4, "get": "g", "copy": "c"}
    assert client.get("/v1/echo", params={"items": "6"}).json()["max"] == 5
    found = client.get("/v1/query", params={"q": "symbol:CDK2", "get": "x", "fields": "symbol"}).json()
    assert found["hits"][0]["symbol"] == "CDK2"
    batch = client.post("/v1/query", json={"q": ["CDK2"], "scopes": ["symbol"], "fields": "symbol"}).json()
    assert batch[0]["_id"] == "1017"


def test_defaults_are_copied_per_api(tmp_path, serve, embedded_dir):
    """A config following default.py's advice (QUERY_KWARGS["GET"]["species"] = ...) changes its API only."""
    extending = config_file(tmp_path, 'from biothings.web.settings.default import QUERY_KWARGS\n'
                                      'QUERY_KWARGS["GET"]["taxon"] = {"type": list, "max": 3}\n'
                                      'ES_INDICES = {"gene": "genes"}\n', "extending.py")
    plain = config_file(tmp_path, 'ES_INDICES = {"gene": "genes"}\n', "plain.py")
    first = BiothingWebSettings(extending, EMBEDDED_DATA_DIR=embedded_dir)
    second = BiothingWebSettings(plain, EMBEDDED_DATA_DIR=embedded_dir)
    assert "taxon" in first.optionset("query", "GET").options
    assert "taxon" not in second.optionset("query", "GET").options
    assert "taxon" not in default.QUERY_KWARGS["GET"]
    first.QUERY_KWARGS["GET"]["size"]["max"] = 7  # changing one API's settings object: that API only
    assert second.QUERY_KWARGS["GET"]["size"]["max"] == 1000 == default.QUERY_KWARGS["GET"]["size"]["max"]
    spec_params = {}
    for name, settings in (("first", first), ("second", second)):
        spec = serve(config=settings).get("/v1/spec").json()
        spec_params[name] = {p["name"] for p in spec["paths"]["/v1/query"]["get"]["parameters"]}
    assert "taxon" in spec_params["first"] and "taxon" not in spec_params["second"]


@pytest.mark.parametrize("value, hosts", [
    ("localhost:9200", ["http://localhost:9200"]),
    ("http://a:9200, https://b:9243/", ["http://a:9200", "https://b:9243"]),
    (["es1:9200", "http://es2:9200"], ["http://es1:9200", "http://es2:9200"]),
    ("", []), (" , ", []),
])
def test_es_host_is_parsed_in_one_place(value, hosts):
    assert parse_es_hosts(value) == hosts
    assert BiothingWebSettings("config", ES_HOST=value).es_hosts == hosts


@pytest.mark.parametrize("value", ["http://a:port", "ftp://a:21", "http://", "://x"])
def test_an_es_host_that_is_not_a_url_is_an_error(value):
    with pytest.raises(SettingsError, match="ES_HOST"):
        BiothingWebSettings("config", ES_HOST=value)


def test_embedded_data_dir_is_relative_to_the_config_file(tmp_path, monkeypatch):
    folder = tmp_path / "app"
    folder.mkdir()
    path = config_file(folder, 'EMBEDDED_DATA_DIR = "data"\n')
    monkeypatch.chdir(tmp_path)
    assert BiothingWebSettings(path).EMBEDDED_DATA_DIR == str(folder / "data")
    assert BiothingWebSettings(config_file(folder, "", "empty.py")).EMBEDDED_DATA_DIR == str(folder / ".biothings_data")
