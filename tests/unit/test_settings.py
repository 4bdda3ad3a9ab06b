"""Settings: config loading, environment overrides, classes, routes, sub-APIs."""


import pytest

from biothings.web.settings import BiothingWebSettings


def test_defaults_without_config():
    settings = BiothingWebSettings()
    assert settings.API_VERSION == "v1"
    assert settings.ES_HOST == ""
    assert settings.biothing_types == ["doc"]


def test_config_by_name_module_and_path(tmp_path):
    import config
    assert BiothingWebSettings("config").API_NAME == "Demo Gene API"
    assert BiothingWebSettings(config).ES_INDICES == {"gene": "genes"}
    path = tmp_path / "myconf.py"
    path.write_text('ES_INDICES = {"variant": "variants"}\nAPI_VERSION = "v2"\n')
    settings = BiothingWebSettings(str(path))
    assert settings.ES_INDICES == {"variant": "variants"} and settings.API_VERSION == "v2"


def test_environment_overrides_with_types(monkeypatch):
    monkeypatch.setenv("ES_HOST", "http://es:9200")
    monkeypatch.setenv("ES_SCROLL_SIZE", "50")
    monkeypatch.setenv("ALLOW_RANDOM_QUERY", "false")
    monkeypatch.setenv("ES_INDICES", '{"gene": "genes_v2"}')
    monkeypatch.setenv("ANNOTATION_DEFAULT_SCOPES", '["_id", "symbol"]')
    settings = BiothingWebSettings("config")
    assert settings.ES_HOST == "http://es:9200"
    assert settings.ES_SCROLL_SIZE == 50
    assert settings.ALLOW_RANDOM_QUERY is False
    assert settings.ES_INDICES == {"gene": "genes_v2"}
    assert settings.ANNOTATION_DEFAULT_SCOPES == ["_id", "symbol"]


@pytest.mark.parametrize("name, value", [("ES_SCROLL_SIZE", "many"), ("ALLOW_RAW", "perhaps"),
                                         ("ES_INDICES", "[1, 2]"), ("ES_INDICES", "{not json")])
def test_bad_environment_values_fail_loudly(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError):
        BiothingWebSettings("config")


def test_kwargs_override_config():
    assert BiothingWebSettings("config", API_VERSION="v9").API_VERSION == "v9"


def test_a_setting_set_on_the_object_is_read_back_both_ways():
    """Settings are plain attributes (read per request); ``get`` must not give the old value
    after ``settings.X = ...`` (a test or an app adjusting one after start-up)."""
    settings = BiothingWebSettings(ES_HOST="", MAX_URL_LENGTH=100)
    assert settings.MAX_URL_LENGTH == 100 and settings.get("MAX_URL_LENGTH") == 100
    settings.MAX_URL_LENGTH = 101
    assert settings.MAX_URL_LENGTH == 101 and settings.get("MAX_URL_LENGTH") == 101
    assert settings.get("NO_SUCH_SETTING", "x") == "x" and settings.get("children") is None


def test_load_class():
    from biothings.web.pipeline import ESQueryBuilder
    assert BiothingWebSettings.load_class("biothings.web.pipeline.ESQueryBuilder") is ESQueryBuilder
    assert BiothingWebSettings.load_class(ESQueryBuilder) is ESQueryBuilder


def test_configure_logger():
    import logging
    logger = logging.getLogger("biothings.test")
    assert BiothingWebSettings(LOGGING_LEVEL="DEBUG").configure_logger(logger) is logger
    assert logger.level == logging.DEBUG


def test_routes_expand_types_and_prefix():
    settings = BiothingWebSettings("config", API_PREFIX="api", ES_INDICES={"gene": "g", "variant": "v"})
    paths = [rule[0] for rule in settings.generate_handlers()]
    assert "/api/v1/gene/query/?" in paths and "/api/v1/variant/query/?" in paths
    assert "/api/status" in paths and "/api/v1/query/?" in paths and "/" in paths
    kwargs = {rule[0]: rule[2] for rule in settings.generate_handlers()}
    assert kwargs["/api/v1/variant/query/?"]["biothing_type"] == "variant"


def test_config_package_mounts_each_api(serve, embedded_dir):
    settings = BiothingWebSettings("tests.configs.multiapi", EMBEDDED_DATA_DIR=embedded_dir, ES_HOST="")
    assert [child.API_PREFIX for child in settings.children] == ["first", "second"]
    client = serve(config=settings)
    assert client.get("/first/v1/gene/1017").json()["symbol"] == "CDK2"
    assert client.get("/second/v1/thing/1017").json()["symbol"] == "CDK2"
    assert client.get("/second/v1/gene/1017").status_code == 404
    assert client.get("/first/v1/metadata").json()["biothing_type"] == "gene"
    assert client.get("/second/status").json()["success"] is True
    assert "First API" in client.get("/").text and "Second API" in client.get("/").text


def test_get_app_extra_handlers():
    import tornado.web

    class Hello(tornado.web.RequestHandler):
        def get(self):
            self.write("hi")

    app = BiothingWebSettings("config").get_app(handlers=[(r"/hello", Hello)])
    assert isinstance(app, tornado.web.Application)
    assert app.biothings.API_NAME == "Demo Gene API"
