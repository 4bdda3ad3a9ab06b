"""Engine-neutral errors: every backend raises these, handlers map them to HTTP.

Keeping them independent of ``elasticsearch`` lets the embedded engine and the
Elasticsearch engine fail the same way, so handlers never know which one ran.
"""


class EngineError(Exception):
    """Base class. ``status`` is the HTTP status the API answers with."""

    status = 500

    def __init__(self, reason="Engine error.", **details):
        super().__init__(reason)
        self.reason = reason
        self.details = details


class QueryError(EngineError):
    """The engine rejected the query (syntax, unknown field type, bad value)."""

    status = 400


class IndexNotFound(EngineError):
    """The configured index does not exist (not loaded yet?)."""

    status = 404


class ScrollError(QueryError):
    """The scroll id is malformed or has expired."""


class EngineUnavailable(EngineError):
    """Unreachable, overloaded or timed out: clients should retry later."""

    status = 503

    def __init__(self, reason="Search engine unavailable.", retry_after=10, **details):
        super().__init__(reason, **details)
        self.retry_after = retry_after


class SearchTimeout(EngineUnavailable):
    """The request's engine work ran past its time budget (``SEARCH_TIMEOUT``) and was abandoned."""

    def __init__(self, seconds, **details):
        super().__init__(f"The search took longer than {seconds:g} s (SEARCH_TIMEOUT) and was abandoned: "
                         f"narrow the query, or retry later.", retry_after=max(1, int(seconds)), **details)
        self.seconds = seconds


class SearchCancelled(EngineError):
    """The client went away: the engine work was abandoned and nothing is answered."""

    status = 499  # nginx's "client closed request": only ever seen in logs and metrics

    def __init__(self, reason="The client closed the connection before the answer.", **details):
        super().__init__(reason, **details)
