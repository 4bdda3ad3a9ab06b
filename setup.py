from setuptools import find_packages, setup

CLIENTS = {
    "es8": ["elasticsearch[async]>=8.18,<9"],
    "es7": ["elasticsearch7[async]>=7.17,<8"],
    "opensearch": ["opensearch-py[async]>=2.4,<4"],
}

setup(
    name="biothings",
    version="0.1.0",
    description="Serve biomedical data as a fast, well-behaved query API (BioThings web layer).",
    packages=find_packages(include=["biothings", "biothings.*"]),
    package_data={"biothings.web": ["demo/*.json", "demo/*.ndjson", "static/*"]},
    python_requires=">=3.10",
    install_requires=[
        "tornado>=6.4",
        # the Elasticsearch client (and elasticsearch.dsl, which the query builder uses):
        # a plain install gets 9.x, the current major; the es8 extra holds it at 8.x
        "elasticsearch[async]>=8.18,<10",
        "orjson>=3.9",
        "pyyaml>=6",
        "msgpack>=1.0",
        "jmespath>=1.0",
        "tantivy>=0.24",
        # fuzzy expansion: optimal string alignment distance over a field's terms
        "rapidfuzz>=3.0",
        "tqdm>=4.60",
        # the CA bundle of the cluster's GET / at start-up, as the clients use it
        "certifi",
        # HTTP/1.1 answer parsing of the Elasticsearch client node (engines/http_node.py)
        "httptools>=0.6",
        "prometheus_client>=0.17",
        # the zstd content coding of answers (biothings.web.compression): gzip's ratio for a fifth of its CPU
        "zstandard>=0.22",
        # the server's event loop when available (less CPU per request than asyncio's)
        "uvloop>=0.19; sys_platform != 'win32' and platform_python_implementation == 'CPython'",
    ],
    extras_require={
        # optional OIDC authentication (AUTH_OIDC_ISSUER): JWT signatures, JWKS keys
        "auth": ["PyJWT[crypto]>=2.8"],
        # the client of each cluster family (chosen from the cluster's GET / at start-up,
        # see docs/deployment.md); the 9.x client cannot talk to Elasticsearch 8, and the
        # elasticsearch8 package cannot sit beside it (each pins its own elastic-transport
        # major), so Elasticsearch 8 takes the elasticsearch package at 8.x
        "es8": CLIENTS["es8"],
        "es7": CLIENTS["es7"],
        "opensearch": CLIENTS["opensearch"],
        "test": [
            # every cluster family: noida-db is an Elasticsearch 8, osmem-server an OpenSearch
            *CLIENTS["es8"], *CLIENTS["es7"], *CLIENTS["opensearch"],
            "pytest>=8",
            "requests>=2.28",
            "pytest-cov>=5",
            "pytest-asyncio>=0.23",
            "hypothesis>=6",
            "noida-db>=0.2.3",
            # an in-memory OpenSearch 3 imitation (a Go binary in the wheel), the second loopback engine
            "osmem-server>=0.1.6",
            "PyJWT[crypto]>=2.8",
            "schemathesis>=4,<5",
            "openapi-spec-validator>=0.7",
            "playwright>=1.40",
            "mkdocs>=1.6",
            # the Python clients of BioThings APIs: fetch_all and querymany against this server
            "biothings_client>=0.4",
            "mygene>=3.2",
        ],
        "docs": ["mkdocs>=1.6"],
    },
    entry_points={"console_scripts": ["biothings-load=biothings.web.load:main"]},
)
