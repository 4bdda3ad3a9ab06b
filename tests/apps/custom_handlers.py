"""A BioThings-style app with custom routes: handlers subclassing the public ``BaseAPIHandler``.

Routes (beside the default ones of the demo config):

- ``/hello``: class attribute ``cache = 100``, answers ``self.finish(dict)``;
- ``/hello/route``: the same class, route argument ``{"cache": 999}`` (wins over the class);
- ``/v1/count``: no cache setting (the API's ``CACHE_MAX_AGE``), reads the engine
  through the settings, and honours ``format`` through declared options;
- ``/v1/echo``: answers its options, named like dict methods (``values``, ``get``, ...).
"""

from biothings.web.handlers import BaseAPIHandler
from biothings.web.settings.default import APP_LIST as DEFAULT_APP_LIST


class HelloHandler(BaseAPIHandler):
    name = "hello"
    cache = 100

    def get(self):
        self.finish({"hello": "world", "type": self.biothing_type})


class CountHandler(BaseAPIHandler):
    name = "count"
    kwargs_name = "count"

    async def get(self):
        self.parse_options()
        total = await self.web_settings.engine.count(self.web_settings.index(None))
        self.finish({"count": total})


class EchoHandler(BaseAPIHandler):
    """Answers its parsed options: names that are dict methods are options like any other."""

    name = "echo"
    kwargs_name = "echo"

    def get(self):
        options = self.parse_options()
        self.finish({name: getattr(options, name) for name in ECHO_KWARGS["GET"]})


APP_LIST = [
    (r"/{pre}/{ver}/echo", EchoHandler),
    (r"/hello", HelloHandler),
    (r"/hello/route", HelloHandler, {"cache": 999}),
    (r"/{pre}/{ver}/count", CountHandler),
    *DEFAULT_APP_LIST,
]
COUNT_KWARGS = {"GET": {"format": {"type": str, "default": "json", "enum": ["json", "yaml"]}}}
ECHO_KWARGS = {"GET": {"values": {"type": list}, "keys": {"type": bool, "default": False},
                       "items": {"type": int, "max": 5}, "get": {"type": str}, "copy": {"type": str, "default": "c"}}}
