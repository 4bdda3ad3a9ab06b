"""Engine-neutral errors: every backend raises these, handlers map them to HTTP.

Keeping them independent of any client package lets the embedded engine and every
cluster engine fail the same way, so handlers never know which one ran.
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


class ResultSetGone(QueryError):
    """A page of a paged read (``Engine.search_page``) whose pinned result set is gone: its
    point in time expired or was closed, or the index it pinned was deleted or replaced
    twice. The client starts again from the first page."""


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


# ---------------------------------------------------------------- cluster answers
# Every client family (elasticsearch 8/9, elasticsearch7, opensearch-py) raises its
# own exception classes, but all carry the cluster's HTTP status and error body.

# Elasticsearch answers these when it is busy rather than when the query is wrong.
_OVERLOAD_TYPES = ("es_rejected_execution_exception", "circuit_breaking_exception")


def _root_reason(info):
    """The most useful human reason in an Elasticsearch/OpenSearch error body."""
    if not isinstance(info, dict):
        return str(info) if info else None
    error = info.get("error", info)
    if isinstance(error, str):
        return error
    if not isinstance(error, dict):
        return None
    for cause in error.get("root_cause") or []:
        if isinstance(cause, dict) and cause.get("reason"):
            return cause["reason"]
    caused = error.get("caused_by")
    if isinstance(caused, dict) and caused.get("reason"):
        return caused["reason"]
    for failure in error.get("failed_shards") or []:
        reason = (failure.get("reason") or {}).get("reason") if isinstance(failure, dict) else None
        if reason:
            return reason
    return error.get("reason")


def _error_type(info):
    if isinstance(info, dict) and isinstance(info.get("error"), dict):
        return info["error"].get("type") or ""
    return ""


def error_from_answer(status, info, message=None, scrolling=False):
    """The error of a cluster's non-2xx answer: ``status`` and its JSON body ``info``."""
    info = info if isinstance(info, dict) else {}
    kind = _error_type(info)
    reason = _root_reason(info) or message or "Search engine error."
    if status == 429 or kind in _OVERLOAD_TYPES or status in (502, 503, 504):
        return EngineUnavailable("Search engine overloaded, retry later.")
    if scrolling and status in (400, 404):
        return ScrollError("Invalid or expired scroll_id.")
    if status == 404 and "index_not_found" in kind:
        return IndexNotFound("Index not found.")
    if 400 <= status < 500:
        return QueryError(reason)
    return EngineUnavailable("Search engine failed.")
