"""Elasticsearch analyzers and normalizers the embedded engine honours.

Text is analysed by tantivy (index time) and by the same tantivy analyzers
called from Python (query time), so a query term is always spelt as the index
spelt it. Elasticsearch's parts are rebuilt from tantivy's:

- ``standard`` tokenizer: Unicode word boundaries (UAX #29) as Lucene's
  ``StandardTokenizer`` applies them, written as one regular expression over
  the Unicode ``Word_Break`` classes (``STANDARD_TOKEN``): ``4.1``, ``3.14``,
  ``RPS6_3_716``, ``B'alpha``, ``p58.1`` and ``a:b`` stay whole; ``alpha-1``,
  ``GO:0006468`` split. Ideographs and hiragana are one token each; runs of
  Thai, Lao, Khmer and Myanmar letters are one token (as Lucene without a
  dictionary); emoji are tokens.
- ``whitespace`` (Java's ``Character.isWhitespace``), ``keyword`` (the whole
  value), ``letter`` and ``lowercase`` tokenizers;
- ``lowercase`` and ``asciifolding`` filters (tantivy's ``ascii_fold`` is a port
  of Lucene's ``ASCIIFoldingFilter``).

Built-in analyzers: ``standard``, ``simple``, ``whitespace``, ``keyword``; built-in
normalizer ``lowercase``; custom ones (``settings.analysis``) made of the parts
above. Anything else (another tokenizer, filter, char filter or parameter) is
refused when the index is built, with its name (``AnalysisError``), rather than
analysed differently from Elasticsearch.

The values of a multi-valued text field are 100 positions apart, as Elasticsearch's
``position_increment_gap`` puts them (``value_gap``).

Known differences, kept small: tokens longer than 255 characters are not split
(Lucene cuts them at ``max_token_length``), and lowercasing follows Rust's rules
where Java's per-character rule differs (``İ`` becomes ``i`` and a combining dot).
"""

import tantivy

# Word_Break classes; Extend, Format and ZWJ attach to what precedes them (WB4)
_X = r"[\p{wb=Extend}\p{wb=Format}\p{wb=ZWJ}]*"
_AH = r"[\p{wb=ALetter}\p{wb=Hebrew_Letter}]" + _X
_HEBREW = r"\p{wb=Hebrew_Letter}" + _X
_NUM = r"\p{wb=Numeric}" + _X
_KATAKANA = r"\p{wb=Katakana}" + _X
_ENL = r"\p{wb=ExtendNumLet}" + _X
_MID_LETTER = r"[\p{wb=MidLetter}\p{wb=MidNumLet}\p{wb=Single_Quote}]" + _X
_MID_NUM = r"[\p{wb=MidNum}\p{wb=MidNumLet}\p{wb=Single_Quote}]" + _X
_SQ = r"\p{wb=Single_Quote}" + _X
_DQ = r"\p{wb=Double_Quote}" + _X
# one stretch a word is made of: katakana, hebrew with quotes, numbers, letters (WB5-WB13)
_UNIT = (rf"(?:{_KATAKANA}(?:(?:{_ENL})*{_KATAKANA})*"
         rf"|{_HEBREW}(?:{_SQ}|{_DQ}{_HEBREW})"
         rf"|{_NUM}(?:(?:(?:{_ENL})*|{_MID_NUM}){_NUM})*"
         rf"|{_AH}(?:(?:(?:{_ENL})*|{_MID_LETTER}){_AH})*)")
_WORD = rf"(?:{_ENL})*{_UNIT}+(?:(?:{_ENL})+{_UNIT}+)*(?:{_ENL})*"
_SOUTH_EAST_ASIAN = r"(?:[\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}\p{Tai_Le}\p{New_Tai_Lue}\p{Tai_Tham}\p{Tai_Viet}]" + _X + ")+"
_IDEOGRAPHIC = r"(?:\p{Han}|\p{Hiragana})" + _X
_EMOJI = (r"(?:\p{Regional_Indicator}\p{Regional_Indicator}"
          r"|(?:\p{Emoji_Presentation}|\p{Extended_Pictographic}\x{FE0F})[\p{Emoji_Modifier}\x{FE0F}\x{20E3}]*"
          r"(?:\x{200D}\p{Extended_Pictographic}[\p{Emoji_Modifier}\x{FE0F}]*)*)")
STANDARD_TOKEN = f"{_WORD}|{_SOUTH_EAST_ASIAN}|{_IDEOGRAPHIC}|{_EMOJI}"

# Java's Character.isWhitespace: space separators but the no-break ones, and some controls
_JAVA_SPACE = r"[\t\n\x0B\x0C\r\x1C-\x1F\p{Zs}\x{2028}\x{2029}--[\x{A0}\x{2007}\x{202F}]]"
WHITESPACE_TOKEN = rf"(?:[^\t\n\x0B\x0C\r\x1C-\x1F\p{{Zs}}\x{{2028}}\x{{2029}}]|[\x{{A0}}\x{{2007}}\x{{202F}}])+"
LETTER_TOKEN = r"\p{L}+"

TOKENIZERS = {
    "standard": lambda: tantivy.Tokenizer.regex(STANDARD_TOKEN),
    "whitespace": lambda: tantivy.Tokenizer.regex(WHITESPACE_TOKEN),
    "keyword": tantivy.Tokenizer.raw,
    "letter": lambda: tantivy.Tokenizer.regex(LETTER_TOKEN),
    "lowercase": lambda: tantivy.Tokenizer.regex(LETTER_TOKEN),  # letter + lowercase filter
}
TOKENIZER_FILTERS = {"lowercase": ["lowercase"]}
FILTERS = {"lowercase": tantivy.Filter.lowercase, "asciifolding": tantivy.Filter.ascii_fold}

# name -> (tokenizer, filters)
BUILTIN_ANALYZERS = {
    "standard": ("standard", ["lowercase"]),
    "default": ("standard", ["lowercase"]),
    "simple": ("lowercase", []),
    "whitespace": ("whitespace", []),
    "keyword": ("keyword", []),
}
BUILTIN_NORMALIZERS = {"lowercase": ["lowercase"]}


# Elasticsearch leaves a gap of 100 positions between the values of a multi-valued text
# field (position_increment_gap), so phrases do not match across values; tantivy leaves 1.
# Each further value is indexed after GAP_SIZE copies of GAP_TOKEN, which the analyzer
# drops while the tokens after them keep their positions: the same gap as Elasticsearch's.
GAP_TOKEN = "zqx"
GAP_SIZE = 99  # tantivy's own gap of 1 makes 100
GAP_TEXT = " ".join([GAP_TOKEN] * GAP_SIZE) + " "


def value_gap(values):
    """``values`` of one multi-valued text field as indexed: each after the first preceded
    by the gap (see ``GAP_TOKEN``)."""
    if len(values) < 2:
        return values
    return [values[0], *(GAP_TEXT + value for value in values[1:])]


class AnalysisError(ValueError):
    """An analyzer, normalizer or part of one that the engine cannot honour."""


class Analyzer:
    """One analysis chain: tokenizer then filters; ``tokens`` and ``normalize`` as Lucene's."""

    def __init__(self, name, tokenizer, filters):
        self.name = name
        self.tokenizer = tokenizer
        self.filters = list(TOKENIZER_FILTERS.get(tokenizer, [])) + list(filters)
        self._tokenize = self.tantivy()
        self._positions = None
        # Lucene's Analyzer.normalize: the filters alone, on the whole text
        self._normalize = self._build(tantivy.Tokenizer.raw())

    def _build(self, tokenizer, gaps=False):
        builder = tantivy.TextAnalyzerBuilder(tokenizer)
        for name in self.filters:
            builder = builder.filter(FILTERS[name]())
        if gaps:
            builder = builder.filter(tantivy.Filter.custom_stopword([GAP_TOKEN]))
        return builder.build()

    def tantivy(self):
        """A new tantivy ``TextAnalyzer`` doing this analysis (to register on an index); it
        drops ``GAP_TOKEN`` (see ``value_gap``)."""
        return self._build(TOKENIZERS[self.tokenizer](), gaps=self.tokenizer != "keyword")

    @property
    def splits(self):
        """Whether values are cut into words (every tokenizer but ``keyword``)."""
        return self.tokenizer != "keyword"

    def tokens(self, text):
        return self._tokenize.analyze(text)

    def positions(self, values, wanted):
        """{token: [positions]} of the tokens in ``wanted`` in the indexed ``values`` of one
        field (``value_gap`` applied), as the index holds them: the gap words keep their
        positions, and tantivy puts each further value one position after the last."""
        if self._positions is None:  # this chain without the filter that drops the gap words
            self._positions = self._build(TOKENIZERS[self.tokenizer]())
        found = {token: [] for token in wanted}
        start = 0
        for value in values:
            tokens = self._positions.analyze(value)
            for offset, token in enumerate(tokens):
                if token in found:
                    found[token].append(start + offset)
            start += len(tokens) + 1
        return found

    def normalize(self, text):
        """The text as a term of a keyword field, a wildcard or a range bound (no tokenizing)."""
        if not self.filters or not text:
            return text
        out = self._normalize.analyze(text)
        return out[0] if out else text

    def to_json(self):
        return {"tokenizer": self.tokenizer, "filter": [f for f in self.filters
                                                        if f not in TOKENIZER_FILTERS.get(self.tokenizer, [])]}


class Analysis:
    """The analyzers and normalizers of one index: built-ins plus ``settings.analysis``."""

    def __init__(self, settings=None):
        settings = settings if isinstance(settings, dict) else {}
        analysis = settings.get("analysis") or (settings.get("index") or {}).get("analysis") or {}
        if not isinstance(analysis, dict):
            raise AnalysisError("settings.analysis must be an object")
        unknown = set(analysis) - {"analyzer", "normalizer"}
        if unknown:
            raise AnalysisError(f"the embedded engine does not support analysis.{sorted(unknown)[0]} "
                                f"(custom tokenizers, filters and char filters)")
        self.custom_analyzers = dict(analysis.get("analyzer") or {})
        self.custom_normalizers = dict(analysis.get("normalizer") or {})
        self._analyzers = {}
        self._normalizers = {}

    def to_json(self):
        out = {}
        if self.custom_analyzers:
            out["analyzer"] = self.custom_analyzers
        if self.custom_normalizers:
            out["normalizer"] = self.custom_normalizers
        return {"analysis": out} if out else {}

    def analyzer(self, name):
        """The ``Analyzer`` called ``name``; ``AnalysisError`` naming it when unsupported."""
        found = self._analyzers.get(name)
        if found is None:
            found = self._analyzers[name] = self._make_analyzer(name)
        return found

    def normalizer(self, name):
        found = self._normalizers.get(name)
        if found is None:
            found = self._normalizers[name] = self._make_normalizer(name)
        return found

    def _make_analyzer(self, name):
        spec = self.custom_analyzers.get(name)
        if spec is None:
            if name in BUILTIN_ANALYZERS:
                tokenizer, filters = BUILTIN_ANALYZERS[name]
                return Analyzer(name, tokenizer, filters)
            raise AnalysisError(f"analyzer [{name}] is not supported by the embedded engine")
        if not isinstance(spec, dict):
            raise AnalysisError(f"analyzer [{name}] must be an object")
        kind = spec.get("type", "custom")
        options = set(spec) - {"type", "tokenizer", "filter", "char_filter", "position_increment_gap"}
        if kind != "custom":
            if kind in BUILTIN_ANALYZERS and not set(spec) - {"type"}:
                tokenizer, filters = BUILTIN_ANALYZERS[kind]
                return Analyzer(name, tokenizer, filters)
            raise AnalysisError(f"analyzer [{name}] of type [{kind}] is not supported by the embedded engine")
        if options:
            raise AnalysisError(f"analyzer [{name}]: option [{sorted(options)[0]}] is not supported")
        if spec.get("char_filter"):
            raise AnalysisError(f"analyzer [{name}]: char filters are not supported by the embedded engine")
        tokenizer = spec.get("tokenizer")
        if tokenizer not in TOKENIZERS:
            raise AnalysisError(f"analyzer [{name}]: tokenizer [{tokenizer}] is not supported by the embedded engine")
        return Analyzer(name, tokenizer, self._filters(spec.get("filter"), f"analyzer [{name}]"))

    def _make_normalizer(self, name):
        spec = self.custom_normalizers.get(name)
        if spec is None:
            if name in BUILTIN_NORMALIZERS:
                return Analyzer(name, "keyword", BUILTIN_NORMALIZERS[name])
            raise AnalysisError(f"normalizer [{name}] is not supported by the embedded engine")
        if not isinstance(spec, dict) or spec.get("type", "custom") != "custom":
            raise AnalysisError(f"normalizer [{name}] is not supported by the embedded engine")
        if spec.get("char_filter") or set(spec) - {"type", "filter", "char_filter"}:
            raise AnalysisError(f"normalizer [{name}]: only filters are supported by the embedded engine")
        return Analyzer(name, "keyword", self._filters(spec.get("filter"), f"normalizer [{name}]"))

    @staticmethod
    def _filters(names, owner):
        names = [names] if isinstance(names, str) else list(names or [])
        for name in names:
            if name not in FILTERS:
                raise AnalysisError(f"{owner}: filter [{name}] is not supported by the embedded engine")
        return names


def tokenizer_name(analyzer_name):
    """The name an analyzer is registered under on a tantivy index."""
    return "es_" + analyzer_name
