"""The API config both servers of the side-by-side benchmark load.

Read by our server (``python index.py --conf=benchmarks/bench_config.py``) and by
BioThings 1.2.2 (``python -m biothings.web --dir=benchmarks --conf=bench_config``):
the same Elasticsearch host (the ES stub) and the same index. Everything else is
each framework's default.
"""

import os

ES_HOST = os.environ.get("BENCH_ES_HOST", "http://127.0.0.1:9200")
ES_INDICES = {"gene": os.environ.get("BENCH_ES_INDEX", "mygene_test")}
