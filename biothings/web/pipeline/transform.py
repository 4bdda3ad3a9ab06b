"""``ESResultTransform``: Elasticsearch-shaped answers -> the API's JSON.

Hits become documents (``_id``, ``_score`` and the source), then each
document option applies in a fixed order: licenses, jmespath, allow_null,
always_list, dotfield. (``_sorted`` is the serializer's job: orjson sorts
keys natively, far cheaper than rebuilding every dict.) Every step works on the fresh objects of
the engine answer; nothing cached is ever mutated.

Every answer is a tree: no container appears twice in it, none contains itself.
Steps that place a value at several spots place a new one at each (``allow_null``),
and results that may share parts (a jmespath expression such as ``{a: @, b: @}``)
are copied out within a node budget (``detach``). A shared container would be
serialized once per place it appears, and an in-place step could loop forever on it.
"""

import functools

import jmespath
from jmespath.exceptions import JMESPathError

from biothings.web.pipeline.builder import MISSING_SUFFIX
from biothings.web.pipeline.errors import BadRequest, EndOfScroll


def _compile_jmespath(text, max_length):
    """``"parent.path|expression"`` -> ``(["parent", "path"], compiled)``."""
    if len(text) > max_length:
        raise BadRequest(f"jmespath too long: {len(text)} characters, the maximum is {max_length}.",
                         keyword="jmespath", max=max_length, num=len(text))
    return _compile_jmespath_text(text)


@functools.lru_cache(maxsize=256)
def _compile_jmespath_text(text):
    path, bar, expression = text.partition("|")
    if not bar:
        raise BadRequest("jmespath must look like 'parent.path|expression'.", keyword="jmespath")
    try:
        compiled = jmespath.compile(expression)
    except JMESPathError as exc:
        raise BadRequest(f"Invalid jmespath expression: {exc}", keyword="jmespath") from None
    return [part for part in path.split(".") if part], compiled


def _json_type(value):
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), "a number")


def detach(value, budget, keyword="jmespath"):
    """A copy of ``value`` in which no list or dict appears twice (a tree), refused past
    ``budget`` nodes: a result whose parts repeat (``{a: @, b: @}`` chained) doubles at each
    step while sharing its parts, so it looks small until it is written out."""
    left = budget
    root = [None]  # holds the copy; a stack, not a recursive closure (a reference cycle per call)
    stack = [(root, 0, value)]
    while stack:
        target, key, node = stack.pop()
        left -= 1
        if left < 0:
            raise BadRequest(f"The jmespath result is too large: more than {budget} values per hit.",
                             keyword=keyword, max=budget)
        if isinstance(node, dict):
            copied = {}
            stack.extend((copied, name, item) for name, item in reversed(node.items()))
        elif isinstance(node, list):
            copied = [None] * len(node)
            stack.extend((copied, index, item) for index, item in reversed(list(enumerate(node))))
        else:
            copied = node
        target[key] = copied
    return root[0]


def _containers(parent, keys):
    """What the dotted path ``keys`` leads to below ``parent``: dicts, and lists as a whole
    (a list met at the end of the path is one container, so items can be removed from it)."""
    current = [parent]
    for key in keys:
        found = []
        for node in current:
            for item in node if isinstance(node, list) else (node,):
                if isinstance(item, dict) and key in item:
                    found.append(item[key])
        current = found
    return current


def _nodes(parent, keys):
    """The values at the dotted path ``keys`` below ``parent``, every list on the way and
    at the end walked (lists of lists too: Elasticsearch reads them as one list)."""
    current = [parent]
    for key in keys:
        found = []
        for node in current:
            if isinstance(node, dict) and key in node:
                stack = [node[key]]
                while stack:
                    value = stack.pop()
                    if isinstance(value, list):
                        stack.extend(reversed(value))
                    else:
                        found.append(value)
        current = found
    return current


class ESResultTransform:
    """Shape engine responses for the HTTP API; hooks per concern."""

    def __init__(self, web_settings):
        self.web_settings = web_settings

    # ---------------------------------------------------------- entry point
    def transform(self, response, options):
        """Dispatch on the shape: a batch (list) or one search response."""
        if options.raw:
            return response
        if isinstance(response, list):
            return self.transform_batch(response, options)
        return self.transform_search(response, options)

    def transform_search(self, response, options):
        hits = response.get("hits") or {}
        total = hits.get("total")
        if isinstance(total, dict):
            total = total.get("value")
        if options.scroll_id and not hits.get("hits"):
            raise EndOfScroll()
        transform_hit = self.transform_hit
        result = {
            "took": response.get("took", 0),
            "total": total or 0,
            "max_score": hits.get("max_score"),
            # None: dropped by jmespath_exclude_empty (total still counts it, as BioThings does)
            "hits": [doc for doc in (transform_hit(hit, options) for hit in hits.get("hits") or ())
                     if doc is not None],
        }
        if response.get("aggregations"):
            result["facets"] = self.transform_aggs(response["aggregations"], total or 0)
        if response.get("_scroll_id") and (options.fetch_all or options.scroll_id):
            result["_scroll_id"] = response["_scroll_id"]
        return result

    def transform_batch(self, responses, options):
        """One entry per hit or miss, in input order, with the term's template."""
        templates = options.templates or [{} for _ in responses]
        out, max_total, over = [], 0, 0
        size = options.size
        hit_template = options.template_hit or {}
        miss_template = options.template_miss or {"notfound": True}
        transform_hit = self.transform_hit
        for template, response in zip(templates, responses):
            if "error" in response:
                error = response["error"]
                reason = error.get("reason") if isinstance(error, dict) else str(error)
                out.append({**template, "error": reason or "Query failed."})
                continue
            hits = response.get("hits") or {}
            total = hits.get("total")
            total = total.get("value", 0) if isinstance(total, dict) else (total or 0)
            max_total = max(max_total, total)
            if size is not None and total > size:
                over += 1
            found = False
            for hit in hits.get("hits") or ():
                doc = transform_hit(hit, options)
                if doc is not None:  # None: jmespath_exclude_empty left nothing of it
                    out.append({**template, **hit_template, **doc})
                    found = True
            if not found:
                out.append({**template, **miss_template})
        if options.with_total:
            result = {"max_total": max_total, "hits": out}
            if over:
                result["msg"] = (f"{over} query terms return > {size} hits, using from={size} "
                                 f"to retrieve the remaining hits")
            return result
        return out

    # ---------------------------------------------------------- documents
    def transform_hit(self, hit, options):
        """An engine hit -> the API document, with every document option applied;
        ``None`` when ``jmespath_exclude_empty`` leaves nothing of it."""
        get = dict.get.__get__(options)  # not attribute reads: see ESQueryBuilder.extras
        doc = {"_id": hit["_id"]}
        if get("annotation_single"):
            if "_version" in hit:
                doc["_version"] = hit["_version"]
        else:
            doc["_score"] = hit.get("_score")
            if "_version" in hit and get("annotation"):
                doc["_version"] = hit["_version"]
        if "_explanation" in hit:
            doc["_explanation"] = hit["_explanation"]
        if "sort" in hit and get("sort"):
            doc["sort"] = hit["sort"]
        source = hit.get("_source")
        if source:
            doc.update(source)
        self.apply_licenses(doc)
        jmespath_text = get("jmespath")
        if jmespath_text:
            doc = self.option_jmespath(doc, jmespath_text, bool(get("jmespath_exclude_empty")))
            if doc is None:
                return None
        allow_null, always_list = get("allow_null"), get("always_list")
        if allow_null:
            self.option_allow_null(doc, allow_null, always_list or ())
        if always_list:
            self.option_always_list(doc, always_list)
        if get("dotfield"):
            doc = self.option_dotfield(doc, always_list or ())
        return doc

    def apply_licenses(self, doc):
        """Add ``_license`` to each node of a source that has a license URL."""
        for path, url in self.web_settings.metadata.licenses():
            for node in _nodes(doc, path):
                if isinstance(node, dict):
                    node["_license"] = url

    def option_jmespath(self, doc, text, exclude_empty=False):
        """``parent.path|expression``: replace the node at ``parent.path`` of each parent
        (every item of a list on the way) by the expression's result on it; an empty
        path works on the whole document. Returns the document, or ``None`` when
        ``exclude_empty`` and no parent is left with a non-empty result (list items whose
        result is empty are removed from their list, as BioThings does; empty means
        falsy there: null, [], {}, "", 0, false)."""
        keys, compiled = _compile_jmespath(text, self.web_settings.JMESPATH_MAX_LENGTH)
        budget = self.web_settings.JMESPATH_MAX_VALUES
        try:
            if not keys:
                result = detach(compiled.search(doc), budget)
                if not isinstance(result, dict):
                    raise BadRequest("jmespath on the whole document ('|expression') must give an object, "
                                     f"not {_json_type(result)}.", keyword="jmespath")
                return None if exclude_empty and not result else result
            target = keys[-1]
            kept = False
            for container in _containers(doc, keys[:-1]):
                for parent in container if isinstance(container, list) else (container,):
                    if isinstance(parent, dict) and target in parent:
                        parent[target] = value = detach(compiled.search(parent[target]), budget)
                        kept = kept or bool(value)
                if exclude_empty and isinstance(container, list):
                    container[:] = [item for item in container
                                    if not isinstance(item, dict) or item.get(target)]
        except JMESPathError as exc:  # e.g. a function given the wrong type of value
            raise BadRequest(f"jmespath expression failed: {str(exc)[:200]}", keyword="jmespath") from None
        return None if exclude_empty and not kept else doc

    @staticmethod
    def option_allow_null(doc, fields, always_list=()):
        """Make each dotted field exist: ``None``, or a new ``[]`` if also always_list."""
        for field in fields:
            keys = str(field).split(".")
            as_list = field in always_list
            parents = [doc]
            for key in keys[:-1]:
                children = []
                for parent in parents:
                    child = parent.setdefault(key, {})
                    if child is None:
                        child = parent[key] = {}
                    if isinstance(child, list):
                        children.extend(item for item in child if isinstance(item, dict))
                    elif isinstance(child, dict):
                        children.append(child)
                parents = children
            last = keys[-1]
            for parent in parents:
                if last not in parent:
                    parent[last] = [] if as_list else None  # one list per parent: never shared

    @staticmethod
    def option_always_list(doc, fields):
        """Wrap each dotted field's value in a list (``None`` -> ``[]``)."""
        for field in fields:
            keys = str(field).split(".")
            for parent in _nodes(doc, keys[:-1]):
                if isinstance(parent, dict) and keys[-1] in parent:
                    value = parent[keys[-1]]
                    if value is None:
                        parent[keys[-1]] = []
                    elif not isinstance(value, list):
                        parent[keys[-1]] = [value]

    @classmethod
    def option_dotfield(cls, doc, always_list=()):
        """Flatten to ``a.b.c`` keys. The values met at one path (through lists) become a
        new list without the nulls and empty objects or lists, as BioThings does (so an
        ``allow_null`` field over a list of objects is ``[]``); a path met once keeps its
        value, in a list when it is in ``always_list``. Falsy scalars (``0``, ``False``,
        ``""``) are kept."""
        groups = {}
        for path, value in cls.traverse(doc, leaf_node=True):
            group = groups.get(path)
            if group is None:
                groups[path] = [value]
            else:
                group.append(value)
        flat = {}
        for path, values in groups.items():
            if len(values) == 1 and path not in always_list:
                flat[path] = values[0]
            else:
                flat[path] = [value for value in values
                              if value is not None and not (isinstance(value, (list, dict)) and not value)]
        return flat

    @staticmethod
    def traverse(obj, leaf_node=False):
        """Yield ``(dotted path, value)`` for each node (only leaves with
        ``leaf_node``), walking through lists: ``{"a": [{"b": 1}]}`` -> ``("a.b", 1)``."""
        stack = [("", obj)]
        while stack:
            path, node = stack.pop()
            if isinstance(node, dict):
                if not leaf_node and path:
                    yield path, node
                if not node and leaf_node and path:
                    yield path, node
                for key in reversed(list(node)):
                    stack.append((f"{path}.{key}" if path else str(key), node[key]))
            elif isinstance(node, list):
                if not leaf_node:
                    yield path, node
                if not node and leaf_node:
                    yield path, node
                for item in reversed(node):
                    stack.append((path, item))
            else:
                yield path, node

    # ---------------------------------------------------------- facets
    def transform_aggs(self, aggs, total):
        """Terms aggregations -> the contract's facets (``other``, real
        ``missing``, ``total`` = matching documents), nested inside terms."""
        facets = {}
        for name, agg in aggs.items():
            if name.endswith(MISSING_SUFFIX) or not isinstance(agg, dict) or "buckets" not in agg:
                continue
            terms = []
            for bucket in agg["buckets"]:
                key = bucket["key"]
                if isinstance(key, bool) or bucket.get("key_as_string") in ("true", "false"):
                    key = bucket.get("key_as_string", str(key).lower())  # a boolean field: 1 -> "true"
                entry = {"term": key, "count": bucket["doc_count"]}
                nested = {key: value for key, value in bucket.items()
                          if isinstance(value, dict) and ("buckets" in value or "doc_count" in value)}
                if nested:
                    entry.update(self.transform_aggs(nested, bucket["doc_count"]))
                terms.append(entry)
            missing = aggs.get(name + MISSING_SUFFIX) or {}
            facets[name] = {
                "_type": "terms",
                "terms": terms,
                "other": agg.get("sum_other_doc_count", 0),
                "missing": missing.get("doc_count", 0),
                "total": total,
            }
        return facets
