"""The request pipeline: builder -> backend -> transform."""

from biothings.web.pipeline.backend import ESQueryBackend
from biothings.web.pipeline.builder import ESQueryBuilder
from biothings.web.pipeline.errors import BadRequest, EndOfScroll, NotFound, PipelineError
from biothings.web.pipeline.transform import ESResultTransform

__all__ = ["ESQueryBuilder", "ESQueryBackend", "ESResultTransform",
           "PipelineError", "BadRequest", "NotFound", "EndOfScroll"]
