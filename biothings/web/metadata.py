"""The metadata cache: ``_meta``, mappings, field lists and licenses per type.

Built at start-up and refreshed in the background (``METADATA_REFRESH_INTERVAL``),
so ``/metadata``, ``/metadata/fields``, license transforms and ``symbol:CDK2``
id parsing never wait for the engine. Requests only read these objects.
"""

import asyncio
import datetime
import functools
import hashlib
import logging
import time

import orjson

from biothings.web.engines.errors import EngineError

logger = logging.getLogger("biothings.web.metadata")


def field_list(mapping, prefix=None, search=None):
    """A mapping's ``properties`` -> ``{"a.b": {"type", "index", "searched_by_default"}}``."""
    fields = {}

    def walk(properties, path):
        for name, spec in properties.items():
            dotted = f"{path}.{name}" if path else name
            if "properties" in spec:
                fields[dotted] = {"type": spec.get("type", "object")}
                walk(spec["properties"], dotted)
                continue
            indexed = spec.get("index", True) is not False and spec.get("enabled", True) is not False
            fields[dotted] = {
                "type": spec.get("type", "object"),
                "index": indexed,
                "searched_by_default": indexed,
            }
            for sub, subspec in (spec.get("fields") or {}).items():
                sub_indexed = subspec.get("index", True) is not False
                fields[f"{dotted}.{sub}"] = {
                    "type": subspec.get("type", "object"),
                    "index": sub_indexed,
                    "searched_by_default": sub_indexed,
                }

    walk(mapping.get("properties") or {}, "")
    if prefix:
        fields = {key: value for key, value in fields.items() if key.startswith(prefix)}
    if search:
        fields = {key: value for key, value in fields.items() if search in key}
    return dict(sorted(fields.items()))


class TypeMetadata:
    """What is known of one biothing type's index (immutable once built)."""

    def __init__(self, biothing_type, index, mapping, meta, total, fields, version=None):
        self.biothing_type = biothing_type
        self.version = version  # the engine's index_version when this was read
        self.index = index
        self.mapping = mapping
        self.meta = meta
        self.total = total
        self.fields = fields
        self.loaded_at = time.time()

    @functools.cached_property
    def build_token(self):
        """A hash of what identifies this build of the index (ETags derive from it)."""
        data = orjson.dumps([self.index, self.version, self.total, self.meta], default=str,
                            option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
        return hashlib.blake2b(data, digest_size=8).hexdigest()

    def source_metadata(self):
        """The ``/metadata`` answer: ``_meta`` with type, build info and stats."""
        meta = dict(self.meta)
        meta.setdefault("biothing_type", self.biothing_type)
        meta.setdefault("build_date", None)
        meta.setdefault("build_version", None)
        meta.setdefault("src", {})
        stats = dict(meta.get("stats") or {})
        stats["total"] = self.total
        meta["stats"] = stats
        return meta


def _merge_mappings(answer):
    """An index's mapping from a get_mapping answer (several indices: merged)."""
    properties, meta = {}, {}
    for value in answer.values():
        mappings = value.get("mappings") or {}
        # ES 6 style {doc_type: {...}} mappings
        if "properties" not in mappings and len(mappings) == 1:
            only = next(iter(mappings.values()))
            if isinstance(only, dict) and "properties" in only:
                mappings = only
        properties.update(mappings.get("properties") or {})
        meta.update(mappings.get("_meta") or {})
    return {"properties": properties}, meta


class MetadataCache:
    """Per-type metadata for one API, refreshed in the background."""

    def __init__(self, web_settings):
        self.web_settings = web_settings
        self.types = {}
        self._licenses = ()
        self._field_names = frozenset()
        self._field_types = {}
        self._refreshing = None
        self.last_error = None

    # ---------------------------------------------------------- reading
    def get(self, biothing_type=None):
        """The ``TypeMetadata`` of a type (the default type for ``None``)."""
        return self.types.get(biothing_type or self.web_settings.default_type)

    def has_field(self, name):
        return name in self._field_names

    def field_types(self):
        """``{dotted field name: Elasticsearch type}`` over every type's mapping."""
        return self._field_types

    def licenses(self):
        """``[(path keys, url)]`` for every source with a license URL."""
        return self._licenses

    # ---------------------------------------------------------- loading
    async def check_versions(self):
        """Refresh now when an index was reloaded (a new build swapped in, the alias
        moved): ``/metadata``, field lists and ETags follow a reload within
        ``METADATA_CHECK_INTERVAL``, not at the next full refresh."""
        engine = self.web_settings.engine
        for found in list(self.types.values()):
            try:
                version = await engine.index_version(found.index)
            except EngineError:
                continue  # down or gone: the full refresh reports it
            if version != found.version:
                logger.info("index %s of %s changed: metadata refreshed", found.index, found.biothing_type)
                return await self.refresh()
        return True

    async def refresh(self):
        """Reload every type; keep the previous data of a type that fails."""
        if self._refreshing is not None:
            return await self._refreshing
        self._refreshing = asyncio.ensure_future(self._refresh())
        try:
            return await self._refreshing
        finally:
            self._refreshing = None

    async def _refresh(self):
        settings = self.web_settings
        ok = True
        for biothing_type in settings.biothing_types:
            index = settings.index(biothing_type)
            try:
                version = await settings.engine.index_version(index)  # before: a reload meanwhile shows next time
                answer = await settings.engine.get_mapping(index)
                mapping, meta = _merge_mappings(answer)
                total = (meta.get("stats") or {}).get("total")
                if not isinstance(total, int):
                    total = await settings.engine.count(index)
                fields = field_list(mapping)
                if not meta:
                    meta = {"build_date": datetime.datetime.now().isoformat(timespec="seconds"),
                            "build_version": None, "src": {}}
                self.types[biothing_type] = TypeMetadata(biothing_type, index, mapping, meta, total, fields, version)
            except EngineError as exc:
                ok = False
                self.last_error = exc
                logger.warning("metadata of %s (%s) not refreshed: %s", biothing_type, index, exc.reason)
        self._rebuild_derived()
        return ok

    def _rebuild_derived(self):
        names, licenses, types = set(), {}, {}
        for metadata in self.types.values():
            names.update(metadata.fields)
            for name, info in metadata.fields.items():
                if isinstance(info, dict) and info.get("type"):
                    types[name] = info["type"]
            for source, info in (metadata.meta.get("src") or {}).items():
                if isinstance(info, dict):
                    url = info.get("license_url_short") or info.get("license_url")
                    if url:
                        licenses[source] = url
        for path, alias in (self.web_settings.LICENSE_TRANSFORM or {}).items():
            if alias in licenses:
                licenses[path] = licenses[alias]
        self._field_names = frozenset(names)
        self._field_types = types
        # only sources that are paths of the documents can carry a license
        self._licenses = tuple((source.split("."), url) for source, url in licenses.items()
                               if source in self._field_names)
