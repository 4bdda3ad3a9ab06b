"""Turn ``APP_LIST`` patterns into tornado rules for one API."""

import re

from biothings.web.auth import protect

_SLASHES = re.compile(r"/{2,}")


def _fill(pattern, prefix, version, biothing_type=""):
    path = pattern.replace("{pre}", prefix).replace("{ver}", version).replace("{typ}", biothing_type)
    path = _SLASHES.sub("/", path)
    return path if path.startswith("/") else "/" + path


def expand_app_list(web_settings):
    """``[(path regex, handler class, initialize kwargs)]``.

    A pattern with ``{typ}`` becomes one rule per biothing type; its handler
    gets ``biothing_type``. Every handler gets ``web_settings``, so several
    APIs (a config package) can live in one application.
    """
    prefix = web_settings.API_PREFIX.strip("/")
    version = web_settings.API_VERSION.strip("/")
    rules, seen = [], set()
    for entry in web_settings.APP_LIST:
        pattern, handler = entry[0], entry[1]
        kwargs = dict(entry[2]) if len(entry) > 2 and entry[2] else {}
        handler = web_settings.load_class(handler)
        if _accepts_settings(handler):
            handler = protect(web_settings, handler)  # AUTH_REQUIRED_ROUTES
        if "{typ}" in pattern:
            targets = [(_fill(pattern, prefix, version, typ), {"biothing_type": typ})
                       for typ in web_settings.biothing_types]
        else:
            targets = [(_fill(pattern, prefix, version), {})]
        for path, extra in targets:
            if path in seen:  # e.g. "/" of every sub-API: the first one wins
                continue
            seen.add(path)
            if _accepts_settings(handler):
                route = {"route": path} if _is_base_handler(handler) else {}
                rules.append((path, handler, {"web_settings": web_settings, **route, **extra, **kwargs}))
            else:
                rules.append((path, handler, kwargs))
    return rules


def _is_base_handler(handler):
    from biothings.web.handlers.base import BaseHandler
    return isinstance(handler, type) and issubclass(handler, BaseHandler)


def _accepts_settings(handler):
    return getattr(handler, "accepts_web_settings", False)
