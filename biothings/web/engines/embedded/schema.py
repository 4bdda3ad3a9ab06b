"""From an Elasticsearch mapping to a tantivy schema, and documents to tantivy rows.

Every searchable leaf of the mapping becomes one tantivy field with a short
internal name (``f0``, ``f1``...); the dotted Elasticsearch name
(``genomic_pos.start``) is kept in ``schema.json`` next to the index. Hidden
fields:

- ``_id``: raw (exact) text, stored, fast (sortable);
- ``_source``: the document as compact JSON bytes (orjson), stored only;
- ``_fields``: the dotted paths (leaves and their parent objects) of the mapped
  fields a document has a value for, ES's ``_field_names``: ``exists`` queries
  and ``missing`` aggregations use it.

Kinds (ES type -> kind): ``text`` (analyzed), ``keyword`` (exact; ``date`` and
``ip`` too), ``int``, ``float``, ``bool``. Keyword and numeric fields are fast
fields (sort, aggregations); multi-valued ones get a second, fast-only column
``<name>__max`` holding the largest value so a descending sort uses the maximum
and an ascending one the minimum (the values are written smallest first), as
Elasticsearch does.
"""

import math

import tantivy

from biothings.web.engines.errors import QueryError
from biothings.web.engines.embedded.analysis import Analysis, AnalysisError, tokenizer_name, value_gap

INT_TYPES = {"integer", "long", "short", "byte", "unsigned_long", "token_count"}
FLOAT_TYPES = {"float", "double", "half_float", "scaled_float"}
KEYWORD_TYPES = {"keyword", "constant_keyword", "wildcard", "date", "date_nanos", "ip", "version"}
TEXT_TYPES = {"text", "match_only_text", "search_as_you_type"}
BOOL_TYPES = {"boolean"}
OBJECT_TYPES = {"object", "nested"}

SORTABLE_KINDS = ("keyword", "int", "float", "bool")

INT_MIN, INT_MAX = -(2 ** 63), 2 ** 63 - 1
# compiled regex queries kept per opened index (wildcards, regexes, term ranges)
AUTOMATA = 512


def kind_of(es_type):
    if es_type in TEXT_TYPES:
        return "text"
    if es_type in KEYWORD_TYPES:
        return "keyword"
    if es_type in INT_TYPES:
        return "int"
    if es_type in FLOAT_TYPES:
        return "float"
    if es_type in BOOL_TYPES:
        return "bool"
    return None  # geo_point, binary...: stored in _source only


class Field:
    """One mapped leaf field (or multi-field), as the engine sees it."""

    __slots__ = ("name", "es_type", "kind", "tname", "indexed", "fast", "sources", "ignore_above",
                 "analyzer", "search_analyzer", "normalizer")

    def __init__(self, name, es_type, kind, tname, indexed=True, fast=False, sources=None,
                 ignore_above=None, analyzer=None, search_analyzer=None, normalizer=None):
        self.name = name          # dotted ES name
        self.es_type = es_type
        self.kind = kind          # text keyword int float bool, or None (not searchable)
        self.tname = tname        # tantivy field name
        self.indexed = indexed
        self.fast = fast
        self.sources = sources or [name]  # source paths feeding this field (copy_to, multi-fields)
        self.ignore_above = ignore_above  # keyword values longer than this are not indexed
        # analysis (names in the index's Analysis): text fields, and keyword normalizers
        self.analyzer = analyzer or ("standard" if kind == "text" else None)
        self.search_analyzer = search_analyzer or self.analyzer
        self.normalizer = normalizer

    @property
    def max_name(self):
        return self.tname + "__max"

    def to_json(self):
        return {"name": self.name, "type": self.es_type, "kind": self.kind, "tname": self.tname,
                "indexed": self.indexed, "fast": self.fast, "sources": self.sources,
                "ignore_above": self.ignore_above, "analyzer": self.analyzer,
                "search_analyzer": self.search_analyzer, "normalizer": self.normalizer}

    @classmethod
    def from_json(cls, obj):
        return cls(obj["name"], obj["type"], obj["kind"], obj["tname"], obj["indexed"],
                   obj["fast"], obj["sources"], obj.get("ignore_above"), obj.get("analyzer"),
                   obj.get("search_analyzer"), obj.get("normalizer"))

    def __repr__(self):
        return f"Field({self.name!r}, {self.es_type!r})"


def walk_mapping(properties, prefix=""):
    """Yield ``(dotted_name, spec)`` for every leaf (multi-fields included) and
    ``(dotted_name, None)`` for every object."""
    for key, spec in (properties or {}).items():
        name = prefix + key
        if not isinstance(spec, dict):
            continue
        if "properties" in spec or spec.get("type") in OBJECT_TYPES:
            yield name, None
            yield from walk_mapping(spec.get("properties"), name + ".")
            continue
        yield name, spec
        for sub, subspec in (spec.get("fields") or {}).items():
            if isinstance(subspec, dict):
                yield name + "." + sub, dict(subspec, _multi_of=name)


class Layout:
    """The mapping compiled: fields by dotted name, objects, and the tantivy schema."""

    def __init__(self, fields, objects, analysis=None, stats=None):
        self.fields = {f.name: f for f in fields}
        self.objects = set(objects)
        self.analysis = analysis or Analysis()
        # per keyword field: [documents with it, sum of their distinct values] (scoring)
        self.stats = {name: list(pair) for name, pair in (stats or {}).items()}
        self._terms = {}  # tantivy field -> its term list (fuzzy expansion), per opened index
        self._automata = {}  # (tantivy field, regex) -> compiled regex query, the newest AUTOMATA
        self.searchable = [f for f in fields if f.kind and f.indexed]
        self.by_source = {}
        for field in fields:
            if field.kind is None:
                continue
            for path in field.sources:
                self.by_source.setdefault(path, []).append(field)
        self._check_analysis()
        self.schema = self._build_schema()

    @classmethod
    def from_mapping(cls, mapping, settings=None):
        """``settings``: the index settings (``{"analysis": ...}``) naming custom analyzers.
        Raises ``AnalysisError`` for an analyzer or normalizer the engine cannot honour."""
        properties = (mapping or {}).get("properties", mapping or {})
        fields, objects, copies = [], [], {}
        for name, spec in walk_mapping(properties):
            if spec is None:
                objects.append(name)
                continue
            es_type = spec.get("type", "object")
            kind = kind_of(es_type)
            indexed = spec.get("index", True) is not False
            sources = [spec["_multi_of"]] if "_multi_of" in spec else [name]
            field = Field(name, es_type, kind, f"f{len(fields)}", indexed,
                          fast=kind in SORTABLE_KINDS, sources=sources,
                          ignore_above=spec.get("ignore_above"),
                          analyzer=spec.get("analyzer") if kind == "text" else None,
                          search_analyzer=spec.get("search_analyzer") if kind == "text" else None,
                          normalizer=spec.get("normalizer") if kind == "keyword" else None)
            fields.append(field)
            targets = spec.get("copy_to") or []
            for target in [targets] if isinstance(targets, str) else targets:
                copies.setdefault(target, []).append(name)
        by_name = {f.name: f for f in fields}
        for target, origins in copies.items():
            if target in by_name:
                by_name[target].sources.extend(o for o in origins if o not in by_name[target].sources)
        return cls(fields, objects, Analysis(settings))

    def to_json(self):
        return {"fields": [f.to_json() for f in self.fields.values()], "objects": sorted(self.objects),
                "settings": self.analysis.to_json(), "stats": self.stats}

    @classmethod
    def from_json(cls, obj):
        return cls([Field.from_json(f) for f in obj["fields"]], obj["objects"],
                   Analysis(obj.get("settings")), obj.get("stats"))

    def count(self, row):
        """Add one document's row to the keyword statistics (at build time)."""
        for field in self.fields.values():
            if field.kind == "keyword" and field.tname in row:
                pair = self.stats.setdefault(field.name, [0, 0])
                pair[0] += 1
                pair[1] += len(row[field.tname])

    def values_per_doc(self, name):
        """Average distinct values of a keyword field per document having it (1 if unknown)."""
        pair = self.stats.get(name)
        return pair[1] / pair[0] if pair and pair[0] else 1.0

    def automaton(self, schema, tname, pattern):
        """tantivy's regex query of ``pattern`` on a field, compiled once per opened index
        (compiling holds the GIL: a pattern many requests use is built once, not per request).
        ValueError (a QueryError upstream) for a pattern tantivy refuses (over 1,000 states)."""
        key = (tname, pattern)
        query = self._automata.get(key)
        if query is None:
            try:
                query = tantivy.Query.regex_query(schema, tname, pattern)
            except ValueError as exc:
                raise QueryError(f"invalid or too complex regular expression: {exc}") from None
            # no lock: this runs in searches under a deadline (see biothings.web.watchdog);
            # each step is one atomic dict operation, and two threads evicting at once drop
            # two of the oldest entries instead of one
            if len(self._automata) >= AUTOMATA:
                try:
                    self._automata.pop(next(iter(self._automata)), None)
                except (StopIteration, RuntimeError):
                    pass
            self._automata[key] = query
        return query

    def terms(self, searcher, tname):
        """Every term of a field (tantivy's dictionary, read once per opened index)."""
        found = self._terms.get(tname)
        if found is None:
            found = self._terms[tname] = [term for term, _count in searcher.terms_with_prefix(tname, "")]
        return found

    def _check_analysis(self):
        """Resolve every analyzer and normalizer now: an unsupported one fails the build."""
        for field in self.fields.values():
            try:
                if field.kind == "text":
                    self.analysis.analyzer(field.analyzer)
                    self.analysis.analyzer(field.search_analyzer)
                elif field.normalizer:
                    self.analysis.normalizer(field.normalizer)
            except AnalysisError as exc:
                raise AnalysisError(f"field [{field.name}]: {exc}") from None

    def register(self, index):
        """Register the text analyzers of the fields on a tantivy ``Index`` (build and open)."""
        for name in sorted({f.analyzer for f in self.fields.values() if f.kind == "text"}):
            index.register_tokenizer(tokenizer_name(name), self.analysis.analyzer(name).tantivy())

    def search_analyzer(self, field, override=None):
        """The ``Analyzer`` for query text on ``field`` (``override``: a name, e.g. ``analyzer=``)."""
        if override is not None:
            return self.analysis.analyzer(override)
        if field.kind == "text":
            return self.analysis.analyzer(field.search_analyzer)
        if field.kind == "keyword" and field.normalizer:
            return self.analysis.normalizer(field.normalizer)
        return None  # the keyword analyzer: the text as one term

    def _build_schema(self):
        sb = tantivy.SchemaBuilder()
        sb.add_text_field("_id", stored=True, fast=True, tokenizer_name="raw")
        sb.add_bytes_field("_source", stored=True)
        sb.add_text_field("_fields", fast=True, tokenizer_name="raw", index_option="basic")
        for f in self.fields.values():
            if f.kind == "text":
                if f.indexed:
                    sb.add_text_field(f.tname, tokenizer_name=tokenizer_name(f.analyzer))
            elif f.kind == "keyword":
                option = "freq" if f.indexed else "basic"
                sb.add_text_field(f.tname, fast=True, tokenizer_name="raw", index_option=option)
                sb.add_text_field(f.max_name, fast=True, tokenizer_name="raw", index_option="basic")
            elif f.kind == "int":
                sb.add_integer_field(f.tname, indexed=f.indexed, fast=True)
                sb.add_integer_field(f.max_name, fast=True)
            elif f.kind == "float":
                sb.add_float_field(f.tname, indexed=f.indexed, fast=True)
                sb.add_float_field(f.max_name, fast=True)
            elif f.kind == "bool":
                # indexed even under "index": false (still not searchable: ``Field.indexed``): a
                # terms bucket's documents are found by term, tantivy cannot range a boolean column
                sb.add_boolean_field(f.tname, indexed=True, fast=True)
                sb.add_boolean_field(f.max_name, fast=True)
        return sb.build()

    # ------------------------------------------------------------------ values

    def field(self, name):
        return self.fields.get(name)

    def check_shapes(self, values):
        """A concrete value where the mapping has an object, or an object where it has a
        value, is refused (``ValueError``), as Elasticsearch refuses it."""
        problem = _shape_conflicts(self, values)
        if problem:
            raise ValueError(problem)

    def indexed_text(self, field, source):
        """The values of the text ``field`` in ``source`` as ``row`` indexes them (gaps
        included): what its positions are read from again (sloppy phrase scoring)."""
        out = []
        for path in field.sources:
            leaves = []
            _leaves_at(source, path.split("."), leaves)
            out.extend(convert(field, leaves, path, self.analysis))
        return self._apart(field, out)

    def _apart(self, field, values):
        """The values of a text field as indexed: 100 positions apart when its analyzer cuts
        them into words (``value_gap``: phrases do not match across values)."""
        return value_gap(values) if self.analysis.analyzer(field.analyzer).splits else values

    def row(self, doc_id, source, source_bytes):
        """The tantivy document (as a dict for ``Document.from_dict``) of one ES document.

        Raises ValueError (ES's mapper_parsing_exception) for a value its field's
        type cannot take."""
        values = {}
        flatten(source, "", values)
        self.check_shapes(values)
        row = {"_id": [doc_id], "_source": [source_bytes]}
        present = set()
        for path, leaves in values.items():
            fields = self.by_source.get(path)
            if not fields:
                continue
            for field in fields:
                converted = convert(field, leaves, path, self.analysis)
                if not converted:
                    continue
                present.add(field.name)
                if field.kind == "text":
                    if field.indexed:
                        row.setdefault(field.tname, []).extend(converted)
                    continue
                column = row.setdefault(field.tname, [])
                column.extend(converted)
        for field_name in list(present):
            field = self.fields[field_name]
            if field.kind == "text":
                values = row.get(field.tname)
                if values:
                    row[field.tname] = self._apart(field, values)
            else:
                column = sorted(set(row[field.tname]))
                row[field.tname] = column
                row[field.max_name] = [column[-1]]
            parts = field_name.split(".")
            for i in range(1, len(parts)):
                prefix = ".".join(parts[:i])
                if prefix in self.objects or prefix in self.fields:
                    present.add(prefix)
        row["_fields"] = sorted(present)
        return row


def _shape_conflicts(layout, paths):
    """ES's mapper_parsing_exception for a value whose shape the mapping contradicts."""
    for path in paths:
        if path in layout.objects:
            return (f"object mapping for [{path}] tried to parse field [{path}] as object, "
                    f"but found a concrete value")
        prefix = path
        while "." in prefix:
            prefix = prefix.rpartition(".")[0]
            field = layout.fields.get(prefix)
            if field is not None and prefix not in layout.objects:
                return f"failed to parse field [{prefix}] of type [{field.es_type}]: cannot take an object"
    return None


def flatten(obj, prefix, out):
    """Leaf values by dotted path; lists (of objects too) are flattened, nulls dropped."""
    for key, value in obj.items():
        _collect(prefix + key, value, out)


def _collect(path, value, out):
    if value is None:
        return
    if isinstance(value, dict):
        flatten(value, path + ".", out)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _collect(path, item, out)
    else:
        out.setdefault(path, []).append(value)


def _leaves_at(value, parts, out):
    """The leaf values at the dotted path ``parts`` (as ``flatten`` finds them, keys with dots too)."""
    if value is None:
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            _leaves_at(item, parts, out)
    elif not parts:
        if not isinstance(value, dict):
            out.append(value)
    elif isinstance(value, dict):
        for cut in range(1, len(parts) + 1):
            key = ".".join(parts[:cut])
            if key in value:
                _leaves_at(value[key], parts[cut:], out)


def convert(field, leaves, path, analysis=None):
    kind = field.kind
    out = []
    normalizer = analysis.normalizer(field.normalizer) if (kind == "keyword" and field.normalizer) else None
    for value in leaves:
        if kind == "text" or kind == "keyword":
            if isinstance(value, bool):
                value = "true" if value else "false"
            elif isinstance(value, float) and value.is_integer() and field.es_type != "date":
                value = repr(value)
            elif not isinstance(value, str):
                value = str(value)
            if kind == "keyword" and field.ignore_above and len(value) > field.ignore_above:
                continue
            out.append(value if normalizer is None else normalizer.normalize(value))
        elif kind == "int":
            out.append(to_int(value, field, path))
        elif kind == "float":
            out.append(to_float(value, field, path))
        elif kind == "bool":
            out.append(to_bool(value, field, path))
    return out


def _bad(value, field, path):
    raise ValueError(f"failed to parse field [{path}] of type [{field.es_type}]: "
                     f"cannot take value {value!r}")


def to_int(value, field=None, path=None):
    """ES coercion: ints, integral floats, numeric strings (truncated like ES)."""
    if isinstance(value, bool):
        _bad(value, field, path)
    if isinstance(value, int):
        result = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            _bad(value, field, path)
        result = int(value)
    elif isinstance(value, str):
        try:
            result = int(value.strip())
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                _bad(value, field, path)
            if not math.isfinite(number):
                _bad(value, field, path)
            result = int(number)
    else:
        _bad(value, field, path)
    if not INT_MIN <= result <= INT_MAX:
        _bad(value, field, path)
    return result


def to_float(value, field=None, path=None):
    if isinstance(value, bool):
        _bad(value, field, path)
    if isinstance(value, (int, float)):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            _bad(value, field, path)
    else:
        _bad(value, field, path)
    if not math.isfinite(result):
        _bad(value, field, path)
    return result


def to_bool(value, field=None, path=None):
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    if value == "":
        return False
    _bad(value, field, path)
