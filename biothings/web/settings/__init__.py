"""``BiothingWebSettings``: one API's configuration, and the objects built from it.

Settings resolve in three layers: ``settings.default``, then the config module,
then environment variables of the same name (parsed to the default's type).
The object also owns what the settings describe, built lazily and once: the
engine client, the pipeline (builder, backend, transform), the metadata cache
and the compiled request options.
"""

import importlib
import importlib.util
import logging
import os
import re
import types

import orjson

from biothings.web.settings import default

logger = logging.getLogger("biothings.web")


def _parse_env(name, text, like):
    """Parse an environment value to the type of ``like`` (the current value)."""
    if isinstance(like, bool):
        word = text.strip().lower()
        if word in ("1", "true", "yes", "y", "t", "on"):
            return True
        if word in ("0", "false", "no", "n", "f", "off", ""):
            return False
        raise ValueError(f"environment {name}={text!r}: expected a boolean")
    if isinstance(like, int):
        return int(text)
    if isinstance(like, float):
        return float(text)
    if isinstance(like, (list, dict, tuple)):
        value = orjson.loads(text)
        if isinstance(like, dict) != isinstance(value, dict) or not isinstance(value, (list, dict)):
            raise ValueError(f"environment {name}={text!r}: expected JSON {type(like).__name__}")
        return value
    return text


def _load_module(config):
    """A module from a module object, a dotted name or a file path."""
    if config is None:
        return None
    if isinstance(config, types.ModuleType):
        return config
    if isinstance(config, str):
        if config.endswith(".py") or os.sep in config:
            path = os.path.abspath(config)
            name = os.path.splitext(os.path.basename(path))[0]
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
        return importlib.import_module(config)
    # any object with attributes works as a config
    return config


def _sub_configs(module):
    """Sub-config modules of a config package (each its own API_PREFIX)."""
    if module is None or not hasattr(module, "__path__"):
        return []
    import pkgutil
    found = []
    for info in pkgutil.iter_modules(module.__path__):
        if info.name.startswith("_"):
            continue
        sub = importlib.import_module(f"{module.__name__}.{info.name}")
        if hasattr(sub, "API_PREFIX") or hasattr(sub, "ES_INDICES"):
            found.append(sub)
    return found


class BiothingWebSettings:
    """Settings of one API (``config`` overrides ``parent`` overrides defaults)."""

    def __init__(self, config=None, parent=None, **kwargs):
        self.config = _load_module(config)
        self.parent = parent
        self._values = {}
        base = parent._values if parent is not None else {
            key: value for key, value in vars(default).items() if key.isupper()}
        self._values.update(base)
        if self.config is not None:
            for key in dir(self.config):
                if key.isupper():
                    self._values[key] = getattr(self.config, key)
        self._values.update({key: value for key, value in kwargs.items() if key.isupper()})
        for key, value in list(self._values.items()):
            if key in os.environ:
                self._values[key] = _parse_env(key, os.environ[key], value)
        self.children = [BiothingWebSettings(sub, parent=self) for sub in _sub_configs(self.config)]
        self._prepare()

    def __getattr__(self, name):
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def get(self, name, default=None):
        return self._values.get(name, default)

    # ------------------------------------------------------------ derived
    def _prepare(self):
        """Precompute what handlers would otherwise work out per request."""
        self.biothing_types = list(self.ES_INDICES)
        self.default_type = self.biothing_types[0] if self.biothing_types else None
        self.annotation_id_rules = [
            (re.compile(pattern) if isinstance(pattern, str) else pattern,
             [scopes] if isinstance(scopes, str) else list(scopes or []))
            for pattern, scopes in self.ANNOTATION_ID_REGEX_LIST
        ]
        self._engine = None
        self._pipeline = None
        self._metadata = None
        self._optionsets = {}

    def index(self, biothing_type=None):
        """The engine index name(s) of a biothing type; all of them for ``None``."""
        if biothing_type is None:
            if len(self.ES_INDICES) == 1:
                return next(iter(self.ES_INDICES.values()))
            return ",".join(dict.fromkeys(self.ES_INDICES.values()))
        return self.ES_INDICES[biothing_type]

    def optionset(self, group, method):
        """The compiled options of ``group`` ("query", "annotation") for ``method``."""
        key = (group, method)
        found = self._optionsets.get(key)
        if found is None:
            from biothings.web.options import OptionSet
            declared = self.get(f"{group.upper()}_KWARGS") or {}
            found = self._optionsets[key] = OptionSet(declared.get(method, {}))
        return found

    # ------------------------------------------------------------ components
    @property
    def engine(self):
        """The search engine client (Elasticsearch, or embedded when ES_HOST is empty)."""
        if self._engine is None:
            if self.parent is not None and self._same_engine_as(self.parent):
                self._engine = self.parent.engine
            else:
                from biothings.web.engines import create_engine
                self._engine = create_engine(self)
        return self._engine

    def _same_engine_as(self, other):
        keys = ("ES_HOST", "ES_ARGS", "EMBEDDED_DATA_DIR", "ES_CONNECTIONS", "ES_REQUEST_TIMEOUT")
        return all(self._values.get(key) == other._values.get(key) for key in keys)

    @property
    def pipeline(self):
        """``(builder, backend, transform)`` built from the configured classes."""
        if self._pipeline is None:
            builder = self.load_class(self.get("ES_QUERY_BUILDER", "biothings.web.pipeline.ESQueryBuilder"))
            backend = self.load_class(self.get("ES_QUERY_BACKEND", "biothings.web.pipeline.ESQueryBackend"))
            transform = self.load_class(self.get("ES_RESULT_TRANSFORM", "biothings.web.pipeline.ESResultTransform"))
            self._pipeline = (builder(self), backend(self), transform(self))
        return self._pipeline

    @property
    def metadata(self):
        """The background-refreshed cache of ``_meta``, mappings and field lists."""
        if self._metadata is None:
            from biothings.web.metadata import MetadataCache
            self._metadata = MetadataCache(self)
        return self._metadata

    # ------------------------------------------------------------ public API
    @staticmethod
    def load_class(kls):
        """A class from a class or its dotted name ``"package.module.Class"``."""
        if not isinstance(kls, str):
            return kls
        module_name, _, class_name = kls.rpartition(".")
        return getattr(importlib.import_module(module_name), class_name)

    def configure_logger(self, logger=logger):
        """Attach a stream handler once and set the level from ``LOGGING_LEVEL``."""
        level = self.get("LOGGING_LEVEL", "INFO")
        logger.setLevel(level if isinstance(level, int) else str(level).upper())
        if not logger.handlers and not logging.getLogger().handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
            logger.addHandler(handler)
        return logger

    def all_settings(self):
        """This API and each sub-API of a config package."""
        return self.children or [self]

    def generate_handlers(self, extra=None):
        """Expand ``APP_LIST`` into tornado rules for this API (and sub-APIs)."""
        from biothings.web.routing import expand_app_list
        rules = []
        for settings in self.all_settings():
            rules.extend(expand_app_list(settings))
        if extra:
            rules = list(extra) + rules
        return rules

    def get_app(self, settings=False, handlers=None):
        """The tornado ``Application`` serving this API.

        ``settings``: tornado application settings (``True`` for debug defaults);
        ``handlers``: extra rules placed before the generated ones.
        """
        from biothings.web.application import BiothingsApplication
        app_settings = {"debug": True} if settings is True else dict(settings or {})
        return BiothingsApplication(self, self.generate_handlers(handlers), **app_settings)
