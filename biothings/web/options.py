"""Declared request parameters: parsed and validated once per request.

A handler declares its parameters in settings (``QUERY_KWARGS``,
``ANNOTATION_KWARGS``) per HTTP method. ``OptionSet`` compiles such a
declaration once (aliases resolved, types bound), then ``parse`` turns the
request's path, query string, form and JSON body into a plain ``Options``
object, or raises ``OptionError`` carrying the contract's 400 body.
"""

import operator
import re

TRUE_WORDS = frozenset(("1", "true", "yes", "y", "t", "on", ""))
FALSE_WORDS = frozenset(("0", "false", "no", "n", "f", "off"))
# Split on , | + and whitespace; a double-quoted run stays one item.
_LIST_ITEM = re.compile(r'"([^"]*)"|([^,|+\s"]+)')
# the common case, plain comma-separated items: str.split does it three times faster
_COMMA_LIST = re.compile(r'[^,|+\s"]+(?:,[^,|+\s"]+)*')


class OptionError(Exception):
    """A bad parameter. ``body`` is the extra keys of the 400 answer."""

    def __init__(self, reason, **body):
        super().__init__(reason)
        self.reason = reason
        self.body = body


class Options(dict):
    """Parsed parameters; attribute access for readability (``options.size``).

    Missing attributes read as ``None`` so pipeline code can probe options
    an app did not declare.
    """

    __slots__ = ()

    # An unset option reads as None. Known names (every declared option, the
    # pipeline's own flags; see ``register``) are class properties calling
    # ``dict.get`` in C: any other name first costs Python an AttributeError
    # before ``__getattr__`` answers, and the pipeline reads options dozens of
    # times per request.
    __getattr__ = dict.get

    def __setattr__(self, name, value):
        self[name] = value

    @classmethod
    def register(cls, *names):
        """Make ``options.<name>`` a fast read for each name (dict methods excluded)."""
        for name in names:
            if isinstance(name, str) and name.isidentifier() and not hasattr(cls, name):
                setattr(cls, name, property(operator.methodcaller("get", name)))


# flags the handlers and the pipeline set and read
Options.register("annotation", "annotation_single", "templates", "template_hit", "template_miss",
                 "biothing_type", "rawquery", "raw", "scroll_id", "fetch_all", "q", "id", "batch_extras")


def split_list(text):
    """``'a, b|c "d e"'`` -> ``['a', 'b', 'c', 'd e']``."""
    if _COMMA_LIST.fullmatch(text):
        return text.split(",")
    return _split_items(text)


def _split_items(text):
    return [quoted if quoted is not None and quoted != "" else bare
            for quoted, bare in _LIST_ITEM.findall(text) if quoted or bare]


class Option:
    """One declared parameter: converts and checks a raw value."""

    def __init__(self, name, spec):
        self.name = name
        self.type = spec.get("type", str)
        self.default = spec.get("default")
        aliases = spec.get("alias") or []
        self.aliases = [aliases] if isinstance(aliases, str) else list(aliases)
        self.max = spec.get("max")
        self.min = spec.get("min")
        self.enum = spec.get("enum")
        self.required = spec.get("required", False)
        self.description = spec.get("description", "")
        self.spec = spec

    def error(self, used, reason, **extra):
        if not -2 ** 63 <= extra.get("num", 0) < 2 ** 63:  # JSON answers carry 64-bit integers
            extra["num"] = str(extra["num"])
        return OptionError(reason, keyword=self.name, alias=used, **extra)

    def convert(self, value, used, from_text):
        """Convert a raw value; ``from_text`` for query/form strings (a list of them)."""
        kind = self.type
        if kind is list:
            return self._to_list(value, used, from_text)
        if from_text:
            value = value[-1]  # a repeated scalar key: the last one wins
        if kind is bool:
            return self._to_bool(value, used)
        if kind is int or kind is float:
            return self._to_number(value, used)
        if kind is str:
            if isinstance(value, (dict, list)):
                raise self.error(used, f"Expected a string for '{used}'.")
            return value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
        return value

    def _to_bool(self, value, used):
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            word = value.strip().lower()
            if word in TRUE_WORDS:
                return True
            if word in FALSE_WORDS:
                return False
        raise self.error(used, f"Expected a boolean for '{used}'.")

    def _to_number(self, value, used):
        kind = self.type
        if isinstance(value, bool) or isinstance(value, (dict, list)):
            raise self.error(used, f"Expected {'an integer' if kind is int else 'a number'} for '{used}'.")
        try:
            number = kind(value.strip() if isinstance(value, str) else value)
            if kind is int and isinstance(value, float) and number != value:
                raise ValueError
        except (ValueError, TypeError, OverflowError):
            raise self.error(used, f"Expected {'an integer' if kind is int else 'a number'} for '{used}'.") from None
        if self.max is not None and number > self.max:
            raise self.error(used, f"Value of '{used}' exceeds the maximum of {self.max}.", max=self.max, num=number)
        if self.min is not None and number < self.min:
            raise self.error(used, f"Value of '{used}' is below the minimum of {self.min}.", min=self.min, num=number)
        return number

    def _to_list(self, value, used, from_text):
        if from_text:
            items = [item for text in value for item in split_list(text)]
        elif isinstance(value, list):
            items = value
        elif isinstance(value, str):
            items = split_list(value)
        elif isinstance(value, dict):
            raise self.error(used, f"Expected a list for '{used}'.")
        else:
            items = [value]
        if self.max is not None and len(items) > self.max:
            raise self.error(
                used, f"Too many values for '{used}': {len(items)} given, the maximum is {self.max}.",
                max=self.max, num=len(items))
        return items

    def check_enum(self, value, used):
        if self.enum is None:
            return
        values = value if isinstance(value, list) else [value]
        for item in values:
            if item not in self.enum:
                raise self.error(used, f"Value of '{used}' must be one of: {', '.join(map(str, self.enum))}.",
                                 allowed=list(self.enum))


class OptionSet:
    """The compiled declaration of one handler method."""

    def __init__(self, specs):
        self.options = {name: Option(name, spec) for name, spec in (specs or {}).items()}
        self.lookup = {}
        for option in self.options.values():
            self.lookup[option.name] = option
            for alias in option.aliases:
                self.lookup.setdefault(alias, option)
        self.defaults = {name: option.default for name, option in self.options.items()}
        Options.register(*self.lookup)

    def parse(self, path_kwargs=None, query=None, form=None, json_body=None):
        """Merge the sources (path first, then query, form, JSON) into ``Options``.

        ``query`` and ``form`` map names to lists of str (tornado's arguments);
        ``json_body`` is the decoded JSON/YAML object or ``None``.
        """
        found = {}  # option name -> [value, used name, from_text, mergeable]
        if path_kwargs:
            for key, value in path_kwargs.items():
                option = self.lookup.get(key)
                if option is not None and value is not None:
                    found[option.name] = [[value], key, True, False]
        for source in (query, form):
            for key, values in (source or {}).items():
                option = self.lookup.get(key)
                if option is None:
                    continue
                previous = found.get(option.name)
                if previous is None:
                    found[option.name] = [values, key, True, True]
                elif previous[3] and option.type is list:
                    # repeated keys of list parameters merge (?fields=a&fields=b)
                    previous[0] = previous[0] + values
        if isinstance(json_body, dict):
            for key, value in json_body.items():
                option = self.lookup.get(key)
                if option is not None and option.name not in found:
                    found[option.name] = [value, key, False, False]

        result = Options(self.defaults)
        for name, (value, used, from_text, _) in found.items():
            option = self.options[name]
            converted = option.convert(value, used, from_text)
            option.check_enum(converted, used)
            result[name] = converted
        for name, option in self.options.items():
            if option.required and (name not in found or result[name] in (None, [], "")):
                raise OptionError(f"Missing required parameter '{name}'.", keyword=name,
                                  alias=option.aliases, missing=name)
        return result
