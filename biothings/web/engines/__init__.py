"""Search engines behind the pipeline: a cluster (Elasticsearch, OpenSearch), or the embedded engine."""

import os


def create_engine(web_settings):
    """The engine named by the settings: the cluster's when ES_HOST is set (its client
    chosen from its ``GET /``, see ``engines.clusters``), else the embedded engine."""
    if web_settings.es_hosts:
        from biothings.web.engines.clusters import connect
        return connect(web_settings.es_hosts, connections=web_settings.ES_CONNECTIONS,
                       timeout=web_settings.ES_REQUEST_TIMEOUT, **(web_settings.ES_ARGS or {}))
    from biothings.web.engines.embedded import EmbeddedEngine
    return EmbeddedEngine(os.path.abspath(web_settings.EMBEDDED_DATA_DIR))


def check_clusters(web_settings):
    """Before serving: every cluster named by the settings (and sub-APIs) can be served
    by an installed client. Raises ``ClusterError`` (one line) otherwise; a cluster
    that does not answer yet is chosen for later (see ``clusters.connect``)."""
    from biothings.web.engines.clusters import client_for, read_cluster
    for settings in web_settings.all_settings():
        if settings.es_hosts:
            cluster = read_cluster(settings.es_hosts, settings.ES_ARGS or {}, settings.ES_REQUEST_TIMEOUT)
            if cluster is not None:
                client_for(cluster)
