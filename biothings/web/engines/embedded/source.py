"""``_source`` filtering with Elasticsearch semantics.

Patterns are dotted paths with ``*`` wildcards (``*`` also crosses dots, as in ES).
An include keeps the matched node and everything under it; it reaches into
objects inside lists too. An exclude drops the matched node. Objects left empty
by the filter are dropped.
"""

import re


def _compile(pattern):
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")) + r"\Z", re.S)


class SourceFilter:
    """Compiled includes/excludes; ``None`` from ``parse`` means "keep everything"."""

    def __init__(self, includes, excludes):
        self.includes = [p for p in includes if p] or None
        self.excludes = [p for p in excludes if p]
        self.inc = [_compile(p) for p in self.includes or []]
        self.exc = [_compile(p) for p in self.excludes]
        # literal heads, to know whether a path may lead to an included one
        self.heads = [p.split("*", 1)[0] for p in self.includes or []]
        # plain top-level names only (fields=symbol,name): the keys are picked, nothing walked
        self.top_level = frozenset(self.includes) if self.includes and not self.excludes and not any(
            "*" in p or "." in p for p in self.includes) else None

    @classmethod
    def parse(cls, spec):
        """``_source`` body value -> False (no source), None (all) or a SourceFilter."""
        if spec is None or spec is True:
            return None
        if spec is False:
            return False
        if isinstance(spec, str):
            spec = [spec]
        if isinstance(spec, (list, tuple)):
            includes, excludes = list(spec), []
        elif isinstance(spec, dict):
            includes = spec.get("includes", spec.get("include")) or []
            excludes = spec.get("excludes", spec.get("exclude")) or []
            includes = [includes] if isinstance(includes, str) else list(includes)
            excludes = [excludes] if isinstance(excludes, str) else list(excludes)
        else:
            return None
        if not includes and not excludes:
            return None
        if "*" in includes and not excludes:
            return None
        return cls(includes, excludes)

    def _included(self, path):
        return any(r.match(path) for r in self.inc)

    def _excluded(self, path):
        return any(r.match(path) for r in self.exc)

    def _may_lead(self, path):
        prefix = path + "."
        return any(head.startswith(prefix) or prefix.startswith(head) for head in self.heads)

    def apply(self, source):
        if self.top_level is not None:
            return {key: value for key, value in source.items() if key in self.top_level}
        return self._object(source, "", self.includes is None)

    def _object(self, obj, prefix, included):
        out = {}
        for key, value in obj.items():
            path = prefix + key
            if self.exc and self._excluded(path):
                continue
            inside = included or self._included(path)
            if not inside and not self._may_lead(path):
                continue
            kept = self._value(value, path, inside)
            if kept is not _DROP:
                out[key] = kept
        return out

    def _value(self, value, path, inside):
        if isinstance(value, dict):
            result = self._object(value, path + ".", inside)
            if not result and (value or not inside):
                return _DROP
            return result
        if isinstance(value, list):
            items = []
            for item in value:
                kept = self._value(item, path, inside)
                if kept is not _DROP:
                    items.append(kept)
            if not items and (value or not inside):
                return _DROP
            return items
        return value if inside else _DROP


_DROP = object()
