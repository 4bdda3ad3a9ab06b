"""``/metadata`` and ``/metadata/fields``: answered from the metadata cache."""

import platform

import tornado

import biothings
from biothings.web.engines.errors import EngineUnavailable
from biothings.web.handlers.base import APIError
from biothings.web.handlers.query import BaseESRequestHandler


class _MetadataHandler(BaseESRequestHandler):

    async def type_metadata(self):
        metadata = await self.ensure_metadata()
        found = metadata.get(self.biothing_type)
        if found is None:
            error = metadata.last_error
            if error is not None and error.status == 404:
                raise APIError(404, "Index not found.")
            raise EngineUnavailable("Metadata not available: search engine unreachable.")
        return found


class MetadataSourceHandler(_MetadataHandler):
    """Build info, sources and stats of a type, from the index ``_meta``."""

    name = "metadata"
    kwargs_name = "metadata"

    async def get(self):
        options = self.parse_options()
        found = await self.type_metadata()
        if options.raw:
            return self.finish_result({"mapping": found.mapping, "_meta": found.meta})
        result = found.source_metadata()  # a new dict: the cache stays untouched
        if options.dev:
            result["software"] = {
                "biothings": biothings.__version__,
                "python": platform.python_version(),
                "tornado": tornado.version,
                "engine": self.web_settings.engine.name,
            }
            result["_indices"] = found.index.split(",")
        self.finish_result(result)


class MetadataFieldHandler(_MetadataHandler):
    """The flattened field list of the mapping, ``?search=`` / ``?prefix=``."""

    name = "fields"
    kwargs_name = "fields"

    async def get(self):
        options = self.parse_options()
        found = await self.type_metadata()
        fields = found.fields
        if options.prefix:
            fields = {key: value for key, value in fields.items() if key.startswith(options.prefix)}
        if options.search:
            fields = {key: value for key, value in fields.items() if options.search in key}
        self.finish_result(fields)
