"""Elasticsearch aggregations -> tantivy aggregation JSON, and the results back.

Supported: ``terms`` (with nested aggregations), ``missing``, ``stats``, ``min``,
``max``, ``avg``, ``sum``, ``value_count``, ``cardinality``. Bucket counts are
per document (the index keeps each distinct value once per document). Buckets
are ordered by count descending, then key ascending; ties at the ``size``
boundary are resolved exactly by asking tantivy for more buckets when needed.
"""

from biothings.web.engines.errors import QueryError
from biothings.web.engines.embedded.query import FIELDS, ID, TEXT_FIELD_REASON

METRICS = {"stats", "min", "max", "avg", "sum", "value_count", "cardinality"}
ALL_BUCKETS = 1 << 30
FIELDS_AGG = "__fields__"


class AggPlan:
    """One level of aggregations: ES names -> specs, and what tantivy is asked."""

    def __init__(self, aggs, layout, factor=1, top=False):
        if not isinstance(aggs, dict):
            raise QueryError("[aggs] must be an object")
        self.layout = layout
        self.top = top
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
            if field is not None and field.kind is None:
                field = None
            if sub and kind != "terms":
                raise QueryError(f"Aggregator [{name}] of type [{kind}] cannot accept sub-aggregations")
            child = AggPlan(sub, layout, factor) if sub else None
            self.items.append((name, kind, field, dict(body), child))
        self.factor = factor

    def set_factor(self, factor):
        self.factor = factor
        for _name, _kind, _field, _body, child in self.items:
            if child is not None:
                child.set_factor(factor)

    def requested(self, size):
        if self.factor >= 64:
            return ALL_BUCKETS
        return (size * 2 + 10) * self.factor

    def tantivy(self):
        """The tantivy aggregation request for this level."""
        out = {}
        for name, kind, field, body, child in self.items:
            if field is None:
                continue
            if kind == "terms":
                size = int(body.get("size", 10))
                request = {"field": field.tname, "size": self.requested(size),
                           "segment_size": ALL_BUCKETS}
                if "min_doc_count" in body:
                    request["min_doc_count"] = int(body["min_doc_count"])
                order = body.get("order")
                if isinstance(order, dict) and "_key" in order:
                    request["order"] = {"_key": order["_key"]}
                spec = {"terms": request}
                sub = child.tantivy() if child is not None else {}
                if sub:
                    spec["aggs"] = sub
                out[name] = spec
            else:
                out[name] = {kind: {"field": field.tname}}
        if self.missing and not self.top:
            out[FIELDS_AGG] = {"terms": {"field": FIELDS, "size": ALL_BUCKETS, "segment_size": ALL_BUCKETS}}
        return out

    def convert(self, result, doc_count, missing_counts=None):
        """Tantivy's result for this level -> ES aggregations. Returns (aggs, complete)."""
        result = result or {}
        out = {}
        complete = True
        for name, kind, field, body, child in self.items:
            raw = result.get(name) or {}
            if kind == "terms":
                size = int(body.get("size", 10))
                converted, ok = self._terms(raw, field, body, size, child)
                complete = complete and ok
                out[name] = converted
            else:
                out[name] = self._metric(kind, raw, field)
        if self.missing:
            if self.top:
                for name, field_name in self.missing:
                    out[name] = {"doc_count": missing_counts[name]}
            else:
                present = {b["key"]: b["doc_count"] for b in (result.get(FIELDS_AGG) or {}).get("buckets", [])}
                for name, field_name in self.missing:
                    out[name] = {"doc_count": doc_count - present.get(field_name, 0)}
        return out, complete

    def _terms(self, raw, field, body, size, child):
        if field is None:
            return {"doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": []}, True
        buckets = list(raw.get("buckets") or [])
        other = int(raw.get("sum_other_doc_count") or 0)
        complete = True
        order = body.get("order")
        by_key = isinstance(order, dict) and "_key" in order
        if by_key:
            reverse = str(order["_key"]).lower() == "desc"
            buckets.sort(key=lambda b: b["key"], reverse=reverse)
        else:
            buckets.sort(key=lambda b: (-b["doc_count"], b["key"]))
            requested = self.requested(size)
            if (requested != ALL_BUCKETS and len(buckets) >= requested and other > 0
                    and size <= len(buckets) and buckets[size - 1]["doc_count"] == buckets[-1]["doc_count"]):
                complete = False  # a tie group may continue beyond what tantivy returned
        kept, dropped = buckets[:size], buckets[size:]
        other += sum(b["doc_count"] for b in dropped)
        out_buckets = []
        for bucket in kept:
            key = bucket["key"]
            entry = {"key": key, "doc_count": bucket["doc_count"]}
            if field.kind == "int" and isinstance(key, float) and key.is_integer():
                entry["key"] = int(key)
            elif field.kind == "bool":
                truth = key in (1, True, "true")
                entry["key"] = 1 if truth else 0
                entry["key_as_string"] = "true" if truth else "false"
            if child is not None:
                sub, ok = child.convert(bucket, bucket["doc_count"])
                complete = complete and ok
                entry.update(sub)
            out_buckets.append(entry)
        return {"doc_count_error_upper_bound": 0, "sum_other_doc_count": other,
                "buckets": out_buckets}, complete

    @staticmethod
    def _metric(kind, raw, field):
        if kind == "stats":
            if field is None or not raw:
                return {"count": 0, "min": None, "max": None, "avg": None, "sum": 0.0}
            result = {k: raw.get(k) for k in ("count", "min", "max", "avg", "sum")}
            if not result["count"]:
                result.update(min=None, max=None, avg=None, sum=0.0)
            return result
        if kind == "value_count":
            value = raw.get("value") if raw else 0
            return {"value": int(value or 0)}
        if kind == "cardinality":
            value = raw.get("value") if raw else 0
            return {"value": int(value or 0)}
        if field is None or not raw:
            return {"value": None if kind != "sum" else 0.0}
        return {"value": raw.get("value")}
