"""Request handlers of a BioThings API."""

from biothings.web.handlers.base import APIError, BaseAPIHandler, BaseHandler, NotFoundHandler
from biothings.web.handlers.metadata import MetadataFieldHandler, MetadataSourceHandler
from biothings.web.handlers.pages import DocsHandler, FrontPageHandler, SpecHandler, StaticHandler
from biothings.web.handlers.query import BaseESRequestHandler, BiothingHandler, ESRequestHandler, QueryHandler
from biothings.web.handlers.status import StatusHandler
from biothings.web.handlers.export import ExportHandler

__all__ = [
    "APIError", "BaseHandler", "BaseAPIHandler", "NotFoundHandler",
    "BaseESRequestHandler", "ESRequestHandler", "BiothingHandler", "QueryHandler", "ExportHandler",
    "MetadataSourceHandler", "MetadataFieldHandler", "StatusHandler",
    "FrontPageHandler", "SpecHandler", "DocsHandler", "StaticHandler",
]
