"""The embedded search engine: Elasticsearch query DSL over local tantivy indexes.

Reading: ``EmbeddedEngine(data_dir)`` (an ``engines.base.Engine``).
Writing: ``build_index``, ``IndexBuilder``, ``ensure_index``, ``infer_mapping``.
See ``docs/embedded.md``.
"""

from biothings.web.engines.embedded.engine import EmbeddedEngine
from biothings.web.engines.embedded.store import (
    IndexBuilder,
    build_index,
    current_version,
    ensure_index,
    index_exists,
    infer_mapping,
)

__all__ = ["EmbeddedEngine", "IndexBuilder", "build_index", "current_version", "ensure_index",
           "index_exists", "infer_mapping"]
