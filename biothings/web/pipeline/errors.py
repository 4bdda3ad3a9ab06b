"""Errors raised by the pipeline stages, each with the HTTP status it means."""


class PipelineError(Exception):
    """A request the pipeline cannot answer; ``status`` and ``body`` form the reply."""

    status = 400

    def __init__(self, reason, status=None, **body):
        super().__init__(reason)
        self.reason = reason
        if status is not None:
            self.status = status
        self.body = body


class BadRequest(PipelineError):
    status = 400


class NotFound(PipelineError):
    status = 404

    def __init__(self, reason="Not Found.", **body):
        super().__init__(reason, **body)


class EndOfScroll(PipelineError):
    """The scroll is exhausted: HTTP 200 with ``success: false`` (contract)."""

    status = 200

    def __init__(self, reason="No more results to return."):
        super().__init__(reason)
