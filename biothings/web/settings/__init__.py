"""``BiothingWebSettings``: one API's configuration, and the objects built from it.

Settings resolve in three layers: ``settings.default``, then the config module,
then environment variables of the same name (parsed to the default's type).
The object also owns what the settings describe, built lazily and once: the
engine client, the pipeline (builder, backend, transform), the metadata cache
and the compiled request options.
"""

import difflib
import importlib
import importlib.util
import logging
import os
import re
import types
import urllib.parse

import orjson

from biothings.web.settings import default

logger = logging.getLogger("biothings.web")

_HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class SettingsError(ValueError):
    """A config mistake found at start-up: the message names the setting and what is wrong."""


def _type_names(kinds):
    return " or ".join("a class" if kind is type else kind.__name__ for kind in kinds)


def check_value(name, value, kinds, source):
    """``value`` of setting ``name`` is one of ``kinds`` (ints pass for floats, tuples for lists)."""
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    elif isinstance(value, kinds):
        ok = True
    elif isinstance(value, int) and float in kinds:
        ok = True
    elif isinstance(value, tuple) and list in kinds:
        ok = True
    else:
        ok = False
    if not ok:
        raise SettingsError(f"{source}: setting {name} must be {_type_names(kinds)}, "
                            f"not {type(value).__name__} ({str(value)[:60]!r})")


def parse_es_hosts(value):
    """``ES_HOST`` -> a list of URLs: comma-separated text or a list; ``host:port``
    means ``http://host:port``. Raises ``SettingsError`` for what cannot be a URL (the
    message never shows credentials written in the URL)."""
    hosts = value.split(",") if isinstance(value, str) else list(value or [])
    urls = []
    for host in hosts:
        if isinstance(host, dict):  # the client's own host dicts are passed on as they are
            urls.append(host)
            continue
        text = str(host).strip()
        if not text:
            continue
        if "://" not in text:
            text = "http://" + text
        parts = urllib.parse.urlsplit(text)
        try:
            valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != -1
        except ValueError:  # a port that is not a number
            valid = False
        if not valid:
            shown = text.partition("://")[2].rpartition("@")[2] or text
            raise SettingsError(f"{shown}: not an http(s) URL with a host and a port number (ES_HOST)")
        urls.append(text.rstrip("/"))
    return urls


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
            if not os.path.isfile(path):
                raise SettingsError(f"config file {path} not found")
            name = os.path.splitext(os.path.basename(path))[0]
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
        try:
            return importlib.import_module(config)
        except ModuleNotFoundError as exc:
            if exc.name is None or not (config == exc.name or config.startswith(exc.name + ".")):
                raise  # the config itself imports something missing: its own traceback says what
            where = os.path.join(os.getcwd(), config.replace(".", os.sep) + ".py")
            raise SettingsError(f"config module {config!r} not found: no {where}, and not importable "
                                f"from the Python path (give --conf a module name or a .py file)") from None
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
        # every API its own copy of the defaults: nothing one API changes reaches another
        self._values = default.settings() if parent is None else dict(parent._values)
        own = {}
        if self.config is not None:
            own.update((key, getattr(self.config, key)) for key in dir(self.config)
                       if key.isupper() and not key.startswith("_"))
        own.update((key, value) for key, value in kwargs.items() if key.isupper())
        self.check(own, self._config_name())
        self._values.update(own)
        for key, value in list(self._values.items()):
            if key in os.environ:
                self._values[key] = _parse_env(key, os.environ[key], value)
        self._resolve_paths()
        # read as plain attributes (handlers read a dozen per request): ``__getattr__`` runs
        # only after a failed lookup, a Python call each time
        self.__dict__.update(self._values)
        self.children = [BiothingWebSettings(sub, parent=self) for sub in _sub_configs(self.config)]
        self._prepare()

    def _config_name(self):
        path = getattr(self.config, "__file__", None)
        return os.path.basename(path) if path else getattr(self.config, "__name__", "settings")

    def check(self, values, source):
        """Refuse unknown names (did-you-mean) and values of the wrong type."""
        known = default.types()
        extra = set(values.get("APP_SETTINGS") or ()) | set((self.parent._values.get("APP_SETTINGS") or ())
                                                            if self.parent is not None else ())
        for name, value in values.items():
            if name in known:
                check_value(name, value, known[name], source)
            elif name.endswith("_KWARGS"):
                check_value(name, value, (dict,), source)
            elif name not in extra:
                close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise SettingsError(f"{source}: unknown setting {name}{hint}; a setting of the app's own "
                                    f"must be listed in APP_SETTINGS")

    def _resolve_paths(self):
        """A relative ``EMBEDDED_DATA_DIR`` is relative to the config file's folder."""
        path = os.fspath(self._values["EMBEDDED_DATA_DIR"])
        config_file = getattr(self.config, "__file__", None)
        if not os.path.isabs(path) and config_file:
            path = os.path.join(os.path.dirname(os.path.abspath(config_file)), path)
        self._values["EMBEDDED_DATA_DIR"] = os.path.abspath(path)

    def __getattr__(self, name):
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def get(self, name, default=None):
        """A setting by name; one set on the object after start-up (``settings.X = ...``) wins."""
        if name in self.__dict__ and name in self._values:
            return self.__dict__[name]
        return self._values.get(name, default)

    # ------------------------------------------------------------ derived
    def _prepare(self):
        """Precompute what handlers would otherwise work out per request; check the
        option declarations (``*_KWARGS``) now rather than at the first request."""
        self.es_hosts = parse_es_hosts(self.ES_HOST)
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
        self._authenticator = None
        self._optionsets = {}
        for name, declared in self._values.items():
            if name.endswith("_KWARGS") and declared:
                self._check_options(name, declared)

    def _check_options(self, name, declared):
        from biothings.web.options import OptionSet, check_spec
        if set(declared) <= _HTTP_METHODS:  # {method: {option: spec}}
            for method, specs in declared.items():
                if not isinstance(specs, dict):
                    raise SettingsError(f"{name}[{method!r}] must be a dict of option declarations")
                self._optionsets[(name[:-len("_KWARGS")].lower(), method)] = OptionSet(specs, where=f"{name}[{method!r}]")
        else:  # {option: spec}, e.g. COMMON_KWARGS: building blocks of the others
            for option, spec in declared.items():
                check_spec(option, spec, f"{name}[{option!r}]")

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
            found = self._optionsets[key] = OptionSet(declared.get(method, {}), where=f"{group.upper()}_KWARGS")
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

    @property
    def authenticator(self):
        """The bearer-token ``Authenticator`` of this API (its provider documents cached), made
        once; its settings are checked then (an OIDC provider needs an audience)."""
        if self._authenticator is None:
            from biothings.web.auth import Authenticator, check_settings
            check_settings(self)
            self._authenticator = Authenticator(self)
        return self._authenticator

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
