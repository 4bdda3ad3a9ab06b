"""The API config of the embedded benchmarks: the 77,000-gene index of ``genes77k.py``.

``BENCH_DATA_DIR`` names the data directory (default ``/tmp/bench-genes77k``).
"""

import os

ES_HOST = ""
EMBEDDED_DATA_DIR = os.environ.get("BENCH_DATA_DIR", "/tmp/bench-genes77k")
ES_INDICES = {"gene": "genes"}
