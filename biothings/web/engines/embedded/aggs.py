"""Elasticsearch aggregations -> tantivy aggregation JSON, and the results back.

Supported: ``terms`` (with nested aggregations), ``missing``, ``stats``, ``min``,
``max``, ``avg``, ``sum``, ``value_count``, ``cardinality``. Bucket counts are
per document (the index keeps each distinct value once per document). Buckets
are ordered by count descending, then key ascending.

Collection is breadth first, as Elasticsearch does for terms of many values: one
tantivy call counts every bucket of a level (exact counts, exact ties, no retry),
the ``size`` best are kept, and only those are searched for their sub-aggregations.
Asking tantivy for the whole tree at once would build every combination of values
of every level (a facet ``a(b(c))`` over thousands of terms: millions of buckets)
before keeping a few. Buckets kept are counted as they are collected, against
``max_buckets`` (Elasticsearch's ``search.max_buckets``): past it, a 400.
"""

import tantivy

from biothings.web.engines.errors import QueryError
from biothings.web.engines.embedded.lanes import checkpoint
from biothings.web.engines.embedded.query import ID, MUST, TEXT_FIELD_REASON

METRICS = {"stats", "min", "max", "avg", "sum", "value_count", "cardinality"}
ALL_BUCKETS = 1 << 30
# Elasticsearch's default search.max_buckets
MAX_BUCKETS = 65536

Q = tantivy.Query


class BucketBudget:
    """Buckets kept so far by one search, refused past ``limit``."""

    def __init__(self, limit=MAX_BUCKETS):
        self.limit = limit
        self.count = 0

    def add(self, count):
        self.count += count
        if self.limit and self.count > self.limit:
            raise QueryError(f"Trying to create too many buckets. Must be less than or equal to: [{self.limit}] "
                             f"but this number of buckets was exceeded: [{self.count}]. This limit can be set by "
                             f"changing the [search.max_buckets] cluster level setting.")


class AggPlan:
    """One level of aggregations: ES names -> specs, collected breadth first (``collect``)."""

    def __init__(self, aggs, layout):
        if not isinstance(aggs, dict):
            raise QueryError("[aggs] must be an object")
        self.items = []        # (name, kind, field, spec, child plan)
        self.missing = []      # (name, field name)
        for name, spec in aggs.items():
            if not isinstance(spec, dict):
                raise QueryError(f"aggregation [{name}] must be an object")
            sub = spec.get("aggs", spec.get("aggregations"))
            kinds = [k for k in spec if k not in ("aggs", "aggregations", "meta")]
            if len(kinds) != 1:
                raise QueryError(f"Expected exactly one aggregation type in [{name}]")
            kind = kinds[0]
            body = spec[kind] or {}
            if kind == "missing":
                self.missing.append((name, body.get("field")))
                continue
            if kind != "terms" and kind not in METRICS:
                raise QueryError(f"Unknown aggregation type [{kind}] (embedded engine)")
            field_name = body.get("field")
            if not field_name:
                raise QueryError(f"Required [field] in aggregation [{name}]")
            if field_name == ID:
                raise QueryError("Fielddata access on the _id field is disallowed, you can "
                                 "re-enable it by updating the dynamic cluster setting: "
                                 "indices.id_field_data.enabled")
            field = layout.fields.get(field_name)
            if field is not None and field.kind == "text":
                raise QueryError(TEXT_FIELD_REASON.format(name=field_name))
            if field is not None and field.kind is None:  # geo_point, binary...: kept in _source only
                raise QueryError(f"Field [{field_name}] of type [{field.es_type}] is not supported for "
                                 f"aggregation [{kind}]")
            if sub and kind != "terms":
                raise QueryError(f"Aggregator [{name}] of type [{kind}] cannot accept sub-aggregations")
            child = AggPlan(sub, layout) if sub else None
            self.items.append((name, kind, field, dict(body), child))

    def tantivy(self):
        """The tantivy aggregation request of this level alone: every bucket of each terms
        aggregation (sub-aggregations are collected per kept bucket, see ``collect``)."""
        out = {}
        for name, kind, field, body, _child in self.items:
            if field is None:
                continue
            if kind == "terms":
                request = {"field": field.tname, "size": ALL_BUCKETS, "segment_size": ALL_BUCKETS}
                if "min_doc_count" in body:
                    request["min_doc_count"] = int(body["min_doc_count"])
                out[name] = {"terms": request}
            else:
                out[name] = {kind: {"field": field.tname}}
        return out

    def collect(self, searcher, compiler, query, doc_count, buckets):
        """The ES aggregations of this level over the documents matching ``query``
        (``doc_count`` of them, None: not counted yet); ``buckets`` counts the kept ones."""
        checkpoint()
        request = self.tantivy()
        result = searcher.aggregate(query, request) if request else {}
        out = {}
        for name, kind, field, body, child in self.items:
            raw = result.get(name) or {}
            if kind == "terms":
                out[name] = self._terms(raw, field, body, child, searcher, compiler, query, buckets)
            else:
                out[name] = self._metric(kind, raw, field)
        for name, field_name in self.missing:
            checkpoint()
            if doc_count is None:
                doc_count = _count(searcher, query)
            exists = compiler.exists(field_name) if field_name else Q.empty_query()
            out[name] = {"doc_count": doc_count - _count(searcher, Q.boolean_query([(MUST, query), (MUST, exists)]))}
        return out

    def _terms(self, raw, field, body, child, searcher, compiler, query, buckets):
        if field is None:
            return {"doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": []}
        size = int(body.get("size", 10))
        found = list(raw.get("buckets") or [])
        order = body.get("order")
        if isinstance(order, dict) and "_key" in order:
            found.sort(key=lambda b: b["key"], reverse=str(order["_key"]).lower() == "desc")
        else:
            found.sort(key=lambda b: (-b["doc_count"], b["key"]))
        kept, dropped = found[:size], found[size:]
        buckets.add(len(kept))
        out_buckets = []
        for bucket in kept:
            key = bucket["key"]
            # tantivy's keys are Elasticsearch's: strings, integers, floats, 1/0 for booleans
            entry = {"key": key, "doc_count": bucket["doc_count"]}
            if field.kind == "bool":
                entry["key_as_string"] = "true" if key else "false"
            if child is not None:
                within = Q.boolean_query([(MUST, query), (MUST, _bucket_query(compiler, field, key))])
                entry.update(child.collect(searcher, compiler, within, bucket["doc_count"], buckets))
            out_buckets.append(entry)
        other = sum(b["doc_count"] for b in dropped)  # tantivy was asked for every bucket
        return {"doc_count_error_upper_bound": 0, "sum_other_doc_count": other, "buckets": out_buckets}

    @staticmethod
    def _metric(kind, raw, field):
        """Elasticsearch's shape of a metric; tantivy answers every metric it was asked (over no
        documents: stats' count 0, sum 0.0, the others null) and counts as floats."""
        if kind == "stats":
            if field is None:
                return {"count": 0, "min": None, "max": None, "avg": None, "sum": 0.0}
            return {k: raw[k] for k in ("count", "min", "max", "avg", "sum")}
        if kind in ("value_count", "cardinality"):
            return {"value": int(raw.get("value") or 0)}
        if field is None:
            return {"value": None if kind != "sum" else 0.0}
        return {"value": raw["value"]}


def _count(searcher, query):
    return searcher.search(query, 1, count=True).count


def _bucket_query(compiler, field, key):
    """The documents of one bucket: the field holds ``key`` (a value as tantivy indexed it)."""
    schema = compiler.schema
    if field.kind == "keyword":
        return Q.term_query(schema, field.tname, str(key))
    if field.kind == "bool":  # indexed whatever the mapping says (Layout._build_schema)
        return Q.term_query(schema, field.tname, bool(key))
    if field.kind == "int":
        value, kind = int(key), tantivy.FieldType.Integer
    else:
        value, kind = float(key), tantivy.FieldType.Float
    if field.indexed:
        return Q.term_query(schema, field.tname, value)
    return Q.range_query(schema, field.tname, kind, value, value)  # bounds included (tantivy's default)
