"""Search engines behind the pipeline: Elasticsearch, or the embedded engine."""

import os


def create_engine(web_settings):
    """The engine named by the settings: Elasticsearch when ES_HOST is set."""
    if web_settings.es_hosts:
        from biothings.web.engines.elasticsearch import ElasticsearchEngine
        return ElasticsearchEngine(
            web_settings.es_hosts,
            connections=web_settings.ES_CONNECTIONS,
            timeout=web_settings.ES_REQUEST_TIMEOUT,
            **(web_settings.ES_ARGS or {}),
        )
    from biothings.web.engines.embedded import EmbeddedEngine
    return EmbeddedEngine(os.path.abspath(web_settings.EMBEDDED_DATA_DIR))
