"""Declared request parameters: parsed and validated once per request.

A handler declares its parameters in settings (``QUERY_KWARGS``,
``ANNOTATION_KWARGS``) per HTTP method. ``OptionSet`` compiles such a
declaration once (aliases resolved, types bound), then ``parse`` turns the
request's path, query string, form and JSON body into a plain ``Options``
object, or raises ``OptionError`` carrying the contract's 400 body.
"""

import difflib
import keyword
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
    an app did not declare. Each ``OptionSet`` parses into its own subclass where
    every declared name reads as an attribute, the names of dict methods too
    (``options.values`` is the option ``values`` when one is declared): code that
    handles options of any API calls dict methods as ``dict.get(options, name)``.
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
        """Make ``options.<name>`` a fast read for each of the pipeline's own flags."""
        for name in names:
            if isinstance(name, str) and name.isidentifier() and not hasattr(cls, name):
                setattr(cls, name, property(lambda self, _name=name: dict.get(self, _name)))

    @classmethod
    def declaring(cls, names):
        """A subclass reading each declared name as an attribute (always present:
        every declared option has a value, its default at least)."""
        namespace = {"__slots__": ()}
        for name in names:
            if name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("__"):
                namespace[name] = property(operator.itemgetter(name))
        return type("Options", (cls,), namespace)


# flags the handlers and the pipeline set and read
Options.register("annotation", "annotation_single", "templates", "template_hit", "template_miss",
                 "biothing_type", "rawquery", "raw", "scroll_id", "fetch_all", "q", "id", "batch_extras",
                 "paging", "streaming")


def split_list(text):
    """``'a, b|c "d e"'`` -> ``['a', 'b', 'c', 'd e']``."""
    if _COMMA_LIST.fullmatch(text):
        return text.split(",")
    return _split_items(text)


def _split_items(text):
    return [quoted if quoted is not None and quoted != "" else bare
            for quoted, bare in _LIST_ITEM.findall(text) if quoted or bare]


SPEC_KEYS = ("type", "default", "alias", "max", "min", "enum", "required", "description")
OPTION_TYPES = (str, int, float, bool, list)


def check_spec(name, spec, where):
    """Refuse a declaration the parser would misread (a typo'd key, a type given as
    text, a bound on a type that has none): a ``SettingsError`` naming it."""
    from biothings.web.settings import SettingsError
    if not isinstance(spec, dict):
        raise SettingsError(f"{where}: the declaration of option {name!r} must be a dict, not {type(spec).__name__}")
    for key in spec:
        if key not in SPEC_KEYS:
            close = difflib.get_close_matches(str(key), SPEC_KEYS, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SettingsError(f"{where}: option {name!r} has an unknown key {key!r}{hint}; "
                                f"known: {', '.join(SPEC_KEYS)}")
    kind = spec.get("type", str)
    if kind not in OPTION_TYPES:
        named = {cls.__name__: cls for cls in OPTION_TYPES}.get(str(kind))
        hint = f": write {named.__name__}, the class, not {kind!r}" if named else ""
        raise SettingsError(f"{where}: option {name!r} has type {kind!r}; one of str, int, float, bool, "
                            f"list{hint}")
    for bound in ("max", "min"):
        if bound not in spec or spec[bound] is None:
            continue
        if kind not in (int, float, list) or (kind is list and bound == "min"):
            raise SettingsError(f"{where}: option {name!r} of type {kind.__name__} cannot have {bound!r} "
                                f"(numbers have max and min, lists a max number of items)")
        if isinstance(spec[bound], bool) or not isinstance(spec[bound], (int, float)):
            raise SettingsError(f"{where}: option {name!r}: {bound!r} must be a number")
    enum = spec.get("enum")
    if enum is not None and not isinstance(enum, (list, tuple, set, frozenset)):
        raise SettingsError(f"{where}: option {name!r}: 'enum' must be a list of the allowed values")
    alias = spec.get("alias")
    if alias is not None and not (isinstance(alias, str)
                                  or (isinstance(alias, (list, tuple)) and all(isinstance(a, str) for a in alias))):
        raise SettingsError(f"{where}: option {name!r}: 'alias' must be a name or a list of names")


class Option:
    """One declared parameter: converts and checks a raw value."""

    def __init__(self, name, spec, where="options"):
        check_spec(name, spec, where)
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

    def __init__(self, specs, where="options"):
        self.options = {name: Option(name, spec, where) for name, spec in (specs or {}).items()}
        self.lookup = {}
        for option in self.options.values():
            self.lookup[option.name] = option
            for alias in option.aliases:
                self.lookup.setdefault(alias, option)
        self.defaults = {name: option.default for name, option in self.options.items()}
        self.options_class = Options.declaring(self.options)

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

        result = self.options_class(self.defaults)
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
