"""Compound and term-set queries and regular expressions on the embedded engine, with the
answers Elasticsearch's documentation gives: ``constant_score``, ``dis_max`` (the best score
plus ``tie_breaker`` times the others), ``function_score``'s query, boost and random order,
``terms`` on each field kind, and Lucene's regular-expression character classes."""

import asyncio
import math

import pytest

from biothings.web.engines.embedded import EmbeddedEngine, build_index
from biothings.web.engines.errors import QueryError

WORDS = ["abc", "acc", "adc", "a-c", "a]c", "a^c", "a\\c", "azc", "aBc", "b"]
DOCS = [{"_id": f"w{n}", "kw": word, "low": word, "n": n, "x": n / 2, "even": n % 2 == 0, "big": n}
        for n, word in enumerate(WORDS)]
DOCS += [{"_id": "t1", "txt": "The quick brown fox", "n": 100}, {"_id": "t2", "txt": "quick quick", "n": 101}]
DOCS[0]["tags"], DOCS[1]["tags"] = ["tag1", "x"], "tag1"  # a keyword with 1.5 values per document having it
MAPPING = {"settings": {"analysis": {"normalizer": {"lower": {"type": "custom", "filter": ["lowercase"]}}}},
           "mappings": {"properties": {"kw": {"type": "keyword"}, "low": {"type": "keyword", "normalizer": "lower"},
                                       "n": {"type": "integer"}, "x": {"type": "double"},
                                       "even": {"type": "boolean"}, "big": {"type": "long"}, "tags": {"type": "keyword"},
                                       "txt": {"type": "text"}}}}


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("queries"))
    build_index(directory, "t", DOCS, MAPPING)
    engine = EmbeddedEngine(directory)
    yield engine
    asyncio.run(engine.close())


@pytest.fixture
def hits(engine):
    def run(query, size=100):
        found = engine.search_sync("t", {"query": query, "size": size})["hits"]["hits"]
        return [(hit["_id"], hit["_score"]) for hit in found]
    return run


def ids(found):
    return sorted(doc_id for doc_id, _ in found)


def with_word(*words):
    return sorted(doc["_id"] for doc in DOCS if doc.get("kw") in words)


def const(term, boost):
    return {"constant_score": {"filter": {"term": term}, "boost": boost}}


# ---------------------------------------------------------------- constant_score, dis_max, function_score

def test_constant_score_gives_its_boost_to_every_hit(hits):
    assert hits(const({"kw": "abc"}, 2.5)) == [("w0", 2.5)]
    assert hits({"constant_score": {"filter": {"term": {"kw": "acc"}}}}) == [("w1", 1.0)]
    assert hits({"constant_score": {"query": {"term": {"kw": "adc"}}, "boost": 3}}) == [("w2", 3.0)]


def test_dis_max_takes_the_best_score_plus_the_tie_breaker_times_the_others(hits):
    both = [const({"n": 0}, 2.0), const({"kw": "abc"}, 1.0), const({"kw": "acc"}, 1.0)]
    assert dict(hits({"dis_max": {"queries": both}})) == {"w0": 2.0, "w1": 1.0}
    assert dict(hits({"dis_max": {"queries": both, "tie_breaker": 0.5}})) == {"w0": 2.5, "w1": 1.0}
    assert dict(hits({"dis_max": {"queries": both, "tie_breaker": 0.5, "boost": 2}})) == {"w0": 5.0, "w1": 2.0}
    assert dict(hits({"dis_max": {"queries": const({"kw": "b"}, 1.0)}})) == {"w9": 1.0}  # one query, not a list
    assert hits({"dis_max": {"queries": []}}) == []


def test_function_score_keeps_its_query_and_boost(hits):
    assert hits({"function_score": {"query": const({"kw": "abc"}, 2.0), "boost": 3}}) == [("w0", 6.0)]
    assert hits({"function_score": {"query": const({"kw": "abc"}, 2.0)}}) == [("w0", 2.0)]
    assert len(hits({"function_score": {}})) == len(DOCS)  # no query: every document


@pytest.mark.parametrize("spec, named", [
    ({"functions": [{"weight": 2}]}, "function [weight]"),
    ({"functions": [{"random_score": {}, "filter": {"term": {"kw": "b"}}}]}, "function [filter]"),
    ({"functions": [{"field_value_factor": {"field": "n"}}]}, "function [field_value_factor]"),
    ({"field_value_factor": {"field": "n"}}, "[field_value_factor]"), ({"min_score": 2}, "[min_score]"),
    ({"functions": ["random_score"]}, "function [a function]"),
])
def test_function_score_functions_other_than_random_are_refused(hits, spec, named):
    """Ignoring them would answer another order, or other hits (min_score), than Elasticsearch."""
    with pytest.raises(QueryError) as refused:
        hits({"function_score": spec})
    assert str(refused.value) == f"[function_score] {named} is not supported by the embedded engine (only random_score)"


def test_function_score_random_order_follows_its_seed(hits):
    def order(spec):
        return [doc_id for doc_id, _ in hits({"function_score": spec})]
    seeded = order({"random_score": {"seed": 7}})
    assert sorted(seeded) == sorted(doc["_id"] for doc in DOCS)
    assert order({"random_score": {"seed": 7}}) == seeded
    assert order({"functions": [{"random_score": {"seed": 7}}]}) == seeded  # inside functions
    assert order({"random_score": {"seed": 7}, "boost_mode": "replace", "score_mode": "sum"}) == seeded
    assert any(order({"random_score": {"seed": seed}}) != seeded for seed in (8, 9, 10))
    unseeded = {order({"random_score": {}})[0] for _ in range(12)}
    assert len(unseeded) > 1  # no seed: another order each time


# ---------------------------------------------------------------- terms

def test_terms_on_keywords_normalized_keywords_numbers_and_text(hits):
    assert ids(hits({"terms": {"kw": ["abc", "b", "zzz"]}})) == ["w0", "w9"]
    assert ids(hits({"terms": {"kw": ["ABC"]}})) == []  # keyword: exact
    assert ids(hits({"terms": {"low": ["ABC", "AzC"]}})) == ["w0", "w7", "w8"]  # normalized, aBc too
    assert ids(hits({"terms": {"n": [1, 2.5, "3", 100]}})) == ["t1", "w1", "w3"]  # 2.5 has a decimal part: none
    assert ids(hits({"terms": {"txt": ["quick"]}})) == ["t1", "t2"]  # the indexed tokens, as given
    assert ids(hits({"terms": {"txt": ["Quick"]}})) == []  # not analyzed
    assert ids(hits({"terms": {"_id": ["w1", "t2", "nope"]}})) == ["t2", "w1"]


def test_terms_score_is_constant_and_boosted(hits):
    assert hits({"terms": {"kw": ["abc"]}}) == [("w0", 1.0)]
    assert hits({"terms": {"kw": ["abc"], "boost": 4, "_name": "named"}}) == [("w0", 4.0)]


@pytest.mark.parametrize("spec", [{"kw": "abc"}, {"kw": ["abc"], "low": ["abc"]}, {"boost": 2}])
def test_terms_refusals(hits, spec):
    with pytest.raises(QueryError) as refused:
        hits({"terms": spec})
    assert str(refused.value) == "[terms] query expects one field with a list of values"


# ---------------------------------------------------------------- Lucene regular expressions: classes

@pytest.mark.parametrize("pattern, words", [
    ("a[b-d]c", ["abc", "acc", "adc"]),
    ("a[^b-d]c", ["a-c", "a]c", "a^c", "a\\c", "azc", "aBc"]),
    ("a[bd]c", ["abc", "adc"]),
    ("a[^bd]c", ["acc", "a-c", "a]c", "a^c", "a\\c", "azc", "aBc"]),
    ("a[-z]c", ["a-c", "azc"]),                # a dash first is itself
    ("a[b\\-d]c", ["abc", "a-c", "adc"]),      # an escaped dash is itself
    ("a[\\]]c", ["a]c"]),                      # an escaped bracket
    ("a[]]c", ["a]c"]),                        # a bracket first is itself
    ("a[\\^]c", ["a^c"]), ("a[\\\\]c", ["a\\c"]),
    ("a[A-Z]c", ["aBc"]), ("a[a-zA-Z]c", ["abc", "acc", "adc", "azc", "aBc"]),
    ("[b]", ["b"]), ("[^a]", ["b"]),
])
def test_regexp_character_classes(hits, pattern, words):
    assert ids(hits({"regexp": {"kw": pattern}})) == with_word(*words)
    assert ids(hits({"query_string": {"query": "kw:/" + pattern + "/"}})) == with_word(*words)


@pytest.mark.parametrize("pattern", ["a[bc", "a[", "a[^", "a[\\", "[a\\]", "[a-"])  # an escaped ] closes nothing
def test_an_unterminated_class_is_refused(hits, pattern):
    with pytest.raises(QueryError) as refused:
        hits({"regexp": {"kw": pattern}})
    assert str(refused.value) == f"invalid regular expression [{pattern}]: unterminated character class"


def test_query_string_regex_length_at_the_limit_and_past_it(hits):
    from biothings.web.engines.embedded.query import MAX_REGEX_LENGTH
    at_limit = "[a-z]" * (MAX_REGEX_LENGTH // 5)  # few states: tantivy's own cap is 1,000 states
    assert len(at_limit) == MAX_REGEX_LENGTH
    assert hits({"query_string": {"query": f"kw:/{at_limit}/"}}) == []
    past = at_limit + "."
    with pytest.raises(QueryError) as refused:
        hits({"query_string": {"query": f"kw:/{past}/"}})
    assert str(refused.value) == (f"The length of regex [{MAX_REGEX_LENGTH + 1}] used in the [query_string] has "
                                  f"exceeded the allowed maximum of [{MAX_REGEX_LENGTH}].")


# ---------------------------------------------------------------- fuzzy

FUZZY = {"kinase": "f0", "kinsae": "f1", "kinaze": "f2", "kinas": "f3", "cinase": "f4", "kynaze": "f5", "kin": "f6"}


@pytest.fixture(scope="module")
def fuzzy_engine(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("fuzzy"))
    docs = [{"_id": doc_id, "kw": word, "low": word.upper(), "txt": word} for word, doc_id in FUZZY.items()]
    build_index(directory, "t", docs, MAPPING)
    engine = EmbeddedEngine(directory)
    yield engine
    asyncio.run(engine.close())


def fuzzy(engine, field, value, **options):
    body = {"query": {"fuzzy": {field: {"value": value, **options}}}, "size": 100}
    return {hit["_id"]: hit["_score"] for hit in engine.search_sync("t", body)["hits"]["hits"]}


def words(*found):
    return sorted(FUZZY[word] for word in found)


@pytest.mark.parametrize("options, found", [
    ({}, ["kinase", "kinsae", "kinaze", "kinas", "cinase", "kynaze"]),               # AUTO: 2 edits at 6 letters
    ({"fuzziness": "AUTO"}, ["kinase", "kinsae", "kinaze", "kinas", "cinase", "kynaze"]),
    ({"fuzziness": 1}, ["kinase", "kinsae", "kinaze", "kinas", "cinase"]),            # a transposition is 1 edit
    ({"fuzziness": 1, "transpositions": False}, ["kinase", "kinaze", "kinas", "cinase"]),
    ({"fuzziness": 1, "prefix_length": 1}, ["kinase", "kinsae", "kinaze", "kinas"]),
    ({"fuzziness": 0}, ["kinase"]),
    ({"max_expansions": 1}, ["kinase"]),                                              # the nearest term only
])
def test_fuzzy_options(fuzzy_engine, options, found):
    assert sorted(fuzzy(fuzzy_engine, "kw", "kinase", **options)) == words(*found)


def test_fuzzy_is_term_level_but_a_keyword_normalizer_applies(fuzzy_engine):
    """Elasticsearch's ``StringFieldType.fuzzyQuery`` builds its term with ``indexedValueForSearch``,
    which a keyword's normalizer applies to (the normalizer docs: term-level queries included);
    osmem-server agrees (``KINASZ`` finds ``KINASE`` at one edit), noida-db does not normalize."""
    assert sorted(fuzzy(fuzzy_engine, "kw", "KINASE")) == []  # no normalizer: six edits away
    assert sorted(fuzzy(fuzzy_engine, "low", "kinase", fuzziness=0)) == words("kinase")  # KINASE, normalized
    assert sorted(fuzzy(fuzzy_engine, "low", "KINASE", fuzziness=1)) == words(
        "kinase", "kinsae", "kinaze", "kinas", "cinase")  # the value normalized before the edits are counted
    assert sorted(fuzzy(fuzzy_engine, "txt", "Kinase", fuzziness=1)) == words("kinase", "cinase")  # K is an edit
    assert sorted(fuzzy(fuzzy_engine, "txt", "Kinase", fuzziness=0)) == []  # not analyzed: no lowercasing


def test_fuzzy_auto_follows_the_length_of_the_value(fuzzy_engine):
    assert sorted(fuzzy(fuzzy_engine, "kw", "kin")) == words("kin")          # 3 letters: 1 edit
    assert sorted(fuzzy(fuzzy_engine, "kw", "kinsa")) == words("kinas", "kinsae")  # 5 letters: 1 edit
    assert sorted(fuzzy(fuzzy_engine, "kw", "ki")) == []                     # 2 letters: exact only


def test_fuzzy_boost(fuzzy_engine):
    plain, boosted = fuzzy(fuzzy_engine, "kw", "kinase"), fuzzy(fuzzy_engine, "kw", "kinase", boost=2)
    assert plain.keys() == boosted.keys() and all(boosted[k] == pytest.approx(2 * plain[k]) for k in plain)


# ---------------------------------------------------------------- multi_match and query_string phrases

def test_multi_match_needs_a_query(hits):
    with pytest.raises(QueryError) as refused:
        hits({"multi_match": {"fields": ["txt"]}})
    assert str(refused.value) == "[multi_match] requires a [query]"


def test_multi_match_over_all_fields_by_default_and_leniency(hits):
    """Elasticsearch's MultiMatchQueryBuilder: all fields (none given, or ``*``) are searched
    leniently unless ``lenient`` says otherwise; named fields strictly."""
    assert ids(hits({"multi_match": {"query": "quick"}})) == ["t1", "t2"]
    assert ids(hits({"multi_match": {"query": "abc", "fields": ["*^2"]}})) == ["w0", "w8"]  # kw, and low normalized
    assert ids(hits({"multi_match": {"query": "abc", "fields": ["kw", "n"], "lenient": True}})) == ["w0"]
    for strict in ({"fields": ["kw", "n"]}, {"lenient": False}):  # "abc" is no integer
        with pytest.raises(QueryError):
            hits({"multi_match": {"query": "abc", **strict}})


def test_multi_match_phrases_with_slop_and_analyzer(hits):
    def phrase(query, **options):
        return ids(hits({"multi_match": {"query": query, "fields": ["txt"], "type": "phrase", **options}}))
    assert phrase("quick fox") == [] and phrase("quick fox", slop=1) == ["t1"]
    assert phrase("Quick brown") == ["t1"]
    assert phrase("Quick brown", analyzer="whitespace") == []  # no lowercasing: "Quick" is no token
    assert ids(hits({"multi_match": {"query": "quick brown", "fields": ["txt"], "operator": "and"}})) == ["t1"]
    assert ids(hits({"multi_match": {"query": "quick brown", "fields": ["txt"]}})) == ["t1", "t2"]  # or


def test_query_string_phrases_on_their_field_with_the_quote_analyzer(hits):
    assert ids(hits({"query_string": {"query": 'txt:"quick brown"'}})) == ["t1"]
    assert ids(hits({"query_string": {"query": 'kw:"quick brown"'}})) == []  # on kw, not the default fields
    assert ids(hits({"query_string": {"query": '"Quick brown"', "default_field": "txt"}})) == ["t1"]
    assert ids(hits({"query_string": {"query": '"Quick brown"', "default_field": "txt",
                                      "quote_analyzer": "whitespace"}})) == []


def test_query_string_regexp_on_a_number_field_needs_leniency(hits):
    with pytest.raises(QueryError):
        hits({"query_string": {"query": "n:/1.*/", "lenient": False}})
    with pytest.raises(QueryError):
        hits({"query_string": {"query": "n:/1.*/", "default_field": "kw"}})
    assert hits({"query_string": {"query": "n:/1.*/", "lenient": True}}) == []
    assert hits({"query_string": {"query": "n:/1.*/"}}) == []  # all fields by default: lenient


# ---------------------------------------------------------------- match_phrase

def test_match_phrase_slop_analyzer_and_boost(hits):
    assert ids(hits({"match_phrase": {"txt": "quick brown"}})) == ["t1"]
    assert ids(hits({"match_phrase": {"txt": "quick fox"}})) == []  # slop 0 by default
    assert ids(hits({"match_phrase": {"txt": {"query": "quick fox", "slop": 1}}})) == ["t1"]
    assert ids(hits({"match_phrase": {"txt": {"query": "Quick brown", "analyzer": "whitespace"}}})) == []
    assert ids(hits({"match_phrase": {"txt": "..."}})) == []  # no token at all
    plain = dict(hits({"match_phrase": {"txt": "quick brown"}}))
    boosted = dict(hits({"match_phrase": {"txt": {"query": "quick brown", "boost": 2}}}))
    assert boosted["t1"] == pytest.approx(2 * plain["t1"])


def test_match_phrase_on_keywords_and_numbers(hits):
    assert ids(hits({"match_phrase": {"kw": "abc"}})) == ["w0"]
    assert ids(hits({"match_phrase": {"kw": "ABC"}})) == []  # a keyword's own analysis: the value whole
    assert ids(hits({"match_phrase": {"low": "ABC"}})) == ["w0", "w8"]  # its normalizer
    assert ids(hits({"match_phrase": {"kw": {"query": "ABC", "analyzer": "standard"}}})) == ["w0"]  # one token
    with pytest.raises(QueryError) as refused:  # two tokens on a field without positions
        hits({"match_phrase": {"kw": {"query": "abc acc", "analyzer": "standard"}}})
    assert str(refused.value) == "field:[kw] was indexed without position data; cannot run PhraseQuery"
    assert ids(hits({"match_phrase": {"n": "1"}})) == ["w1"]
    with pytest.raises(QueryError):  # not lenient
        hits({"match_phrase": {"n": "one"}})


# ---------------------------------------------------------------- Lucene regular expressions: operators

LITERALS = ["*bc", "{2}x", "a|c", "+", "|a", ")", "ab", "abcabc", ""]


@pytest.fixture(scope="module")
def literal_engine(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("literals"))
    build_index(directory, "t", [{"_id": f"l{n}", "kw": word} for n, word in enumerate(LITERALS)],
                {"properties": {"kw": {"type": "keyword"}}})
    engine = EmbeddedEngine(directory)
    yield engine
    asyncio.run(engine.close())


@pytest.mark.parametrize("pattern, found", [
    ("*bc", ["*bc"]), ("ab|*bc", ["*bc", "ab"]), ("{2}x", ["{2}x"]), ("+", ["+"]),  # nothing to repeat: itself
    ("(|a)", ["|a"]), ("ab|)", [")", "ab"]), ("a(|c)", ["a|c"]),                     # nothing to join: itself
    ('"a|c"', ["a|c"]), ('a"|"c', ["a|c"]),                                          # quoted: literal
    ("a@", ["a|c", "ab", "abcabc"]), ("@", LITERALS),                                # @: any string
    ("(abc){2}", ["abcabc"]), ("ab()", ["ab"]), ("a**b*", ["", "ab"]), ("", [""]),
])
def test_regexp_operators_as_lucene_reads_them(literal_engine, pattern, found):
    """osmem-server (Lucene's RegExp) gives these answers; noida-db does not read Lucene syntax."""
    body = {"query": {"regexp": {"kw": pattern}}, "size": 100}
    hits = literal_engine.search_sync("t", body)["hits"]["hits"]
    assert sorted(hit["_source"]["kw"] for hit in hits) == sorted(found)


@pytest.mark.parametrize("pattern, reason", [
    ("ab|", "unexpected end-of-string"), ("(", "unexpected end-of-string"), ("(ab", "unbalanced parentheses"),
    ("ab)", "unbalanced parentheses"), ("a(b|)c", "unbalanced parentheses"), ("a~b", None), ("a&b", None),
    ("ab|#", None), ("#", None),  # the empty language: tantivy has none
])
def test_regexp_refusals(hits, pattern, reason):
    with pytest.raises(QueryError) as refused:
        hits({"regexp": {"kw": pattern}})
    if reason:
        assert str(refused.value) == f"invalid regular expression [{pattern}]: {reason}"
    else:
        assert "is not supported by the embedded engine" in str(refused.value)


@pytest.mark.parametrize("query, found", [
    ({"prefix": {"low": "AB"}}, ["abc", "aBc"]), ({"wildcard": {"low": "a?C"}}, [w for w in WORDS if len(w) == 3]),
    ({"regexp": {"low": "[A-C]BC"}}, ["abc", "aBc"]),
    ({"prefix": {"kw": "aB"}}, ["aBc"]), ({"wildcard": {"kw": "a?C"}}, []), ({"regexp": {"kw": "A.c"}}, []),
])
def test_term_level_patterns_go_through_a_keyword_normalizer(hits, query, found):
    """As osmem-server (and Elasticsearch's ``indexedValueForSearch``) does; a keyword without one
    takes the pattern as written."""
    assert ids(hits(query)) == with_word(*found)


@pytest.mark.parametrize("query", [{"prefix": {"txt": "QUI"}}, {"wildcard": {"txt": "QU*K"}},
                                   {"regexp": {"txt": "QU.CK"}}, {"fuzzy": {"txt": {"value": "QUICK", "fuzziness": 0}}}])
def test_term_level_patterns_on_text_are_not_analyzed(hits, query):
    assert hits(query) == []
    lowered = {kind: {field: (value.lower() if isinstance(value, str) else {**value, "value": value["value"].lower()})
                      for field, value in spec.items()} for kind, spec in query.items()}
    assert ids(hits(lowered)) == ["t1", "t2"]


# ---------------------------------------------------------------- numeric ranges

NUMBER_BOUNDS = [-1, 0, 1, 2.5, 3, "3", "2.5", 4.5, 9, 100, 2 ** 31 - 1, -2 ** 31]


@pytest.mark.parametrize("field", ["n", "x"])
@pytest.mark.parametrize("lower_op, upper_op", [("gt", "lt"), ("gte", "lte"), ("gt", "lte"), ("gte", "lt")])
def test_numeric_ranges_against_the_numbers_themselves(hits, field, lower_op, upper_op):
    """An integer field holds whole numbers: a bound with a fraction is compared as a number
    (gte 2.5 is gte 3), as Elasticsearch rounds it inward."""
    compare = {"gt": float.__gt__, "gte": float.__ge__, "lt": float.__lt__, "lte": float.__le__}
    for lower in NUMBER_BOUNDS:
        for upper in NUMBER_BOUNDS:
            expected = sorted(doc["_id"] for doc in DOCS if field in doc
                              and compare[lower_op](float(doc[field]), float(lower))
                              and compare[upper_op](float(doc[field]), float(upper)))
            query = {"range": {field: {lower_op: lower, upper_op: upper}}}
            assert ids(hits(query)) == expected, query
        for op in (lower_op, upper_op):
            query = {"range": {field: {op: lower}}}
            assert ids(hits(query)) == sorted(doc["_id"] for doc in DOCS if field in doc
                                              and compare[op](float(doc[field]), float(lower))), query


def test_range_from_to_and_their_inclusion(hits):
    def found(**bounds):
        return ids(hits({"range": {"n": bounds}}))
    assert found(**{"from": 2, "to": 4}) == ["w2", "w3", "w4"]
    assert found(**{"from": 2, "to": 4, "include_lower": False}) == ["w3", "w4"]
    assert found(**{"from": 2, "to": 4, "include_upper": False}) == ["w2", "w3"]
    assert found(**{"from": 2, "gt": 3, "lte": 4}) == ["w4"]  # gt/lte win over from/to
    assert found(**{"to": 1}) == ["w0", "w1"]
    assert found(gte=2, lte=4, format="x", relation="intersects", time_zone="+01:00") == ["w2", "w3", "w4"]


def test_range_boost_and_refusals(hits):
    assert hits({"range": {"n": {"gte": 9, "lte": 9, "boost": 3}}}) == [("w9", 3.0)]
    assert hits({"range": {"n": {"gte": 9, "lte": 9}}}) == [("w9", 1.0)]
    assert ids(hits({"range": {"n": {"gt": 5, "lt": 5}}})) == [] and ids(hits({"range": {"n": {"gte": 6, "lte": 5}}})) == []
    for spec, message in (({"n": {"gte": 1}, "x": {"gte": 1}}, "[range] query expects exactly one field"),
                          ({"n": {"gte": 1, "over": 2, "above": 3}}, "[range] query does not support [above]")):
        with pytest.raises(QueryError) as refused:
            hits({"range": spec})
        assert str(refused.value) == message
    with pytest.raises(QueryError) as refused:
        hits({"range": {"n": {"gte": "two"}}})
    assert str(refused.value) == 'failed to create query: For input string: "two" on field [n] of type [integer]'
    for bound in (2 ** 31, -2 ** 31 - 1, 1e30, "2147483648"):  # past an integer, N+1 from its ends
        with pytest.raises(QueryError) as refused:
            hits({"range": {"n": {"lte": bound}}})
        assert str(refused.value) == f"failed to create query: Value [{bound}] is out of range for an integer"
    assert len(hits({"range": {"x": {"lte": 1e30}}})) == len(WORDS)  # a double holds it


# ---------------------------------------------------------------- minimum_should_match, wildcards

@pytest.mark.parametrize("spec, count, wanted", [
    (2, 4, 2), ("2", 4, 2), ("-1", 4, 3), (-5, 4, 0), ("0", 4, 0), ("75%", 4, 3), ("75%", 5, 3), ("-25%", 4, 3),
    ("-25%", 5, 4), ("100%", 3, 3), ("0%", 3, 0), ("50%", 3, 1), (" 1 ", 3, 1),
])
def test_minimum_should_match_as_elasticsearch_documents_it(spec, count, wanted):
    from biothings.web.engines.embedded.query import minimum_should_match
    assert minimum_should_match(spec, count) == wanted


@pytest.mark.parametrize("spec", ["abc", "1.5", "%", "3<90%"])
def test_minimum_should_match_refusals(spec):
    from biothings.web.engines.embedded.query import minimum_should_match
    with pytest.raises(QueryError) as refused:
        minimum_should_match(spec, 3)
    assert str(refused.value) == f"invalid minimum_should_match [{spec}]"


def test_minimum_should_match_in_a_bool(hits):
    shoulds = [{"term": {"kw": "abc"}}, {"term": {"n": 0}}, {"term": {"x": 0.0}}, {"term": {"kw": "b"}}]
    assert ids(hits({"bool": {"should": shoulds, "minimum_should_match": "75%"}})) == ["w0"]
    assert ids(hits({"bool": {"should": shoulds, "minimum_should_match": 1}})) == ["w0", "w9"]


def test_wildcard_options(hits):
    assert ids(hits({"wildcard": {"kw": {"value": "A?C", "case_insensitive": True}}})) == with_word(
        "abc", "acc", "adc", "a-c", "a]c", "a^c", "a\\c", "azc", "aBc")
    assert ids(hits({"wildcard": {"kw": "A?C"}})) == []
    assert ids(hits({"wildcard": {"kw": {"wildcard": "a?c"}}})) == with_word(*[w for w in WORDS if len(w) == 3])
    assert hits({"wildcard": {"kw": {"value": "b*", "boost": 2}}}) == [("w9", 2.0)]
    with pytest.raises(QueryError):  # not lenient
        hits({"wildcard": {"n": "1*"}})


def test_query_string_wildcards(hits):
    assert len(hits({"query_string": {"query": "*"}})) == len(DOCS)
    assert ids(hits({"query_string": {"query": "txt:*"}})) == ["t1", "t2"]  # field:* is exists
    assert ids(hits({"query_string": {"query": "kw:a?c", "default_field": "kw"}})) == with_word(
        "abc", "acc", "adc", "a-c", "a]c", "a^c", "a\\c", "azc", "aBc")  # normalized: lowercase ? c
    for pattern in ("*bc", "?bc"):
        with pytest.raises(QueryError) as refused:
            hits({"query_string": {"query": f"kw:{pattern}", "allow_leading_wildcard": False}})
        assert str(refused.value) == "'*' or '?' not allowed as first character in WildcardQuery"
    assert ids(hits({"query_string": {"query": "kw:a*c", "allow_leading_wildcard": False}})) != []
    with pytest.raises(QueryError):
        hits({"query_string": {"query": "n:1*", "lenient": False}})


@pytest.mark.parametrize("fuzziness, text, edits", [
    (None, "ab", 0), (None, "abc", 1), (None, "abcdef", 2), ("auto", "abcde", 1), ("AUTO:4,7", "abc", 0),
    ("AUTO:4,7", "abcd", 1), ("AUTO:4,7", "abcdefg", 2), (" auto:2,3 ", "ab", 1), (0, "abcdef", 0), ("1", "a", 1),
    (2, "a", 2), (5, "a", 2), (1.5, "abc", 1), ("2.0", "abc", 2),
])
def test_fuzziness_as_elasticsearch_reads_it(fuzziness, text, edits):
    from biothings.web.engines.embedded.query import fuzziness_edits
    assert fuzziness_edits(fuzziness, text) == edits


@pytest.mark.parametrize("fuzziness, message", [
    ("AUTO:4", "failed to parse [AUTO:] fuzziness [AUTO:4]"), ("AUTO:a,b", "failed to parse [AUTO:] fuzziness [AUTO:a,b]"),
    ("two", "invalid fuzziness [two]"), (-1, "invalid fuzziness [-1]"),
])
def test_fuzziness_refusals(fuzziness, message):
    from biothings.web.engines.embedded.query import fuzziness_edits
    with pytest.raises(QueryError) as refused:
        fuzziness_edits(fuzziness, "abc")
    assert str(refused.value) == message


@pytest.mark.parametrize("options, message", [
    ({"max_expansions": "many"}, "[fuzzy] max_expansions and prefix_length must be integers"),
    ({"prefix_length": "one"}, "[fuzzy] max_expansions and prefix_length must be integers"),
    ({"max_expansions": 0}, "[fuzzy] max_expansions must be positive"),
])
def test_fuzzy_option_refusals(fuzzy_engine, options, message):
    with pytest.raises(QueryError) as refused:
        fuzzy(fuzzy_engine, "kw", "kinase", **options)
    assert str(refused.value) == message


@pytest.mark.parametrize("query, what, lenient", [
    ({"prefix": {"n": "1"}}, "prefix", "n:1*"), ({"wildcard": {"n": "1?"}}, "wildcard", "n:1?"),
    ({"fuzzy": {"n": "1"}}, "fuzzy", "n:1~"), ({"regexp": {"n": "1"}}, "regexp", "n:/1/")])
def test_string_queries_on_a_number_field_say_so(hits, query, what, lenient):
    """Elasticsearch's message names the query (osmem-server's too); a lenient query_string
    over all fields matches nothing there."""
    with pytest.raises(QueryError) as refused:
        hits(query)
    assert str(refused.value) == (f"Can only use {what} queries on keyword and text fields - not on [n] "
                                  f"which is of type [integer]")
    assert hits({"query_string": {"query": lenient}}) == []


def test_prefix_options(hits):
    assert ids(hits({"prefix": {"kw": {"value": "AB", "case_insensitive": True}}})) == with_word("abc", "aBc")
    assert hits({"prefix": {"kw": {"value": "b", "boost": 2}}}) == [("w9", 2.0)]
    assert ids(hits({"prefix": {"txt": "qui"}})) == ["t1", "t2"]


def test_bool_clauses_and_their_scores(hits):
    term = {"term": {"kw": "abc"}}
    everything = hits({"bool": {}})  # match_all
    assert len(everything) == len(DOCS) and all(score == 1.0 for _, score in everything)
    only_not = hits({"bool": {"must_not": [term]}})
    assert ids(only_not) == sorted(doc["_id"] for doc in DOCS if doc.get("kw") != "abc")
    assert hits({"bool": {"filter": [term]}}) == [("w0", 0.0)]  # a filter does not score
    assert hits({"bool": {"must": [const({"kw": "abc"}, 2.0)], "boost": 3}}) == [("w0", 6.0)]
    # shoulds beside a must are optional: they only add to the score
    both = dict(hits({"bool": {"must": [const({"n": 0}, 1.0)], "should": [const({"kw": "abc"}, 2.0)]}}))
    assert both == {"w0": 3.0}
    optional = dict(hits({"bool": {"must": [const({"n": 1}, 1.0)], "should": [const({"kw": "abc"}, 2.0)]}}))
    assert optional == {"w1": 1.0}
    # alone, at least one should must match; minimum_should_match above the count: nothing
    assert ids(hits({"bool": {"should": [term, {"term": {"kw": "b"}}]}})) == ["w0", "w9"]
    assert hits({"bool": {"should": [term], "minimum_should_match": 2}}) == []
    assert ids(hits({"bool": {"must": [term], "should": [{"term": {"kw": "b"}}], "minimum_should_match": 1}})) == []


# ---------------------------------------------------------------- term values, read as Elasticsearch reads them
# (each answer checked against osmem-server, whose number and boolean parsing is Elasticsearch's;
# noida-db matches nothing for all of them)

EVEN = ["w0", "w2", "w4", "w6", "w8"]


@pytest.mark.parametrize("query, expected", [
    ({"term": {"n": "4.0"}}, ["w4"]), ({"term": {"n": 4.0}}, ["w4"]), ({"term": {"n": " 4 "}}, ["w4"]),
    ({"term": {"n": "4d"}}, ["w4"]), ({"term": {"n": "4e0"}}, ["w4"]),
    ({"term": {"n": "4.5"}}, []), ({"term": {"n": 4.5}}, []),  # a decimal part: nothing, no error
    ({"term": {"n": "1e400"}}, []), ({"term": {"n": "-1e400"}}, []), ({"term": {"n": "NaN"}}, []),
    ({"term": {"n": "-2147483648"}}, []), ({"term": {"big": "9223372036854775807"}}, []),
    ({"terms": {"n": ["1e400", 4.5, "4"]}}, ["w4"]),
    ({"term": {"x": "1.5"}}, ["w3"]), ({"term": {"x": 1}}, ["w2"]), ({"term": {"x": "1.5f"}}, ["w3"]),
    ({"term": {"even": "true"}}, EVEN), ({"term": {"even": True}}, EVEN),
    ({"range": {"even": {"gte": True}}}, EVEN), ({"range": {"even": {"lt": "true"}}}, ["w1", "w3", "w5", "w7", "w9"]),
    # query_string over all fields is lenient: a value the field cannot take matches nothing
    ({"query_string": {"query": "even:TRUE"}}, []), ({"query_string": {"query": "even:1"}}, []),
    ({"query_string": {"query": "even:true"}}, EVEN), ({"query_string": {"query": "n:abc"}}, []),
    ({"query_string": {"query": "n:99999999999"}}, []), ({"query_string": {"query": "even:[yes TO true]"}}, []),
    ({"query_string": {"query": "n:4.0"}}, ["w4"]),
    # range bounds as Java reads a double, whole numbers exact (a long has more digits than a double keeps)
    ({"range": {"n": {"gte": "5.0", "lte": "1e1"}}}, ["w5", "w6", "w7", "w8", "w9"]),
    ({"range": {"big": {"gte": 9223372036854775807}}}, []), ({"range": {"big": {"gt": "9223372036854775806"}}}, []),
])
def test_term_values_each_field_type_takes(hits, query, expected):
    assert ids(hits(query)) == expected


@pytest.mark.parametrize("query, reason", [
    ({"term": {"n": "99999999999"}}, "Value [99999999999] is out of range for an integer"),
    ({"term": {"n": 2147483648}}, "Value [2147483648] is out of range for an integer"),
    ({"term": {"n": "1e10"}}, "Value [1e10] is out of range for an integer"),
    ({"terms": {"n": ["4", "99999999999"]}}, "Value [99999999999] is out of range for an integer"),
    ({"match": {"n": "99999999999"}}, "Value [99999999999] is out of range for an integer"),
    ({"term": {"big": "9223372036854775808"}}, "Value [9223372036854775808] is out of range for a long"),
    ({"term": {"big": 1e19}}, "Value [1e+19] is out of range for a long"),
    ({"term": {"n": "abc"}}, 'For input string: "abc" on field [n] of type [integer]'),
    ({"term": {"n": "1_000"}}, 'For input string: "1_000" on field [n] of type [integer]'),
    ({"term": {"n": "0x10"}}, 'For input string: "0x10" on field [n] of type [integer]'),
    ({"term": {"n": True}}, 'For input string: "true" on field [n] of type [integer]'),
    ({"range": {"n": {"gte": "1_000"}}}, 'For input string: "1_000" on field [n] of type [integer]'),
    ({"term": {"x": "abc"}}, 'For input string: "abc" on field [x] of type [double]'),
    ({"term": {"x": True}}, 'For input string: "true" on field [x] of type [double]'),
    ({"term": {"x": "NaN"}}, "[double] supports only finite values, but got [NaN]"),
    ({"term": {"x": "1e400"}}, "[double] supports only finite values, but got [Infinity]"),
    ({"term": {"x": "-Infinity"}}, "[double] supports only finite values, but got [-Infinity]"),
    ({"term": {"even": "TRUE"}}, "Can't parse boolean value [TRUE], expected [true] or [false]"),
    ({"term": {"even": " true "}}, "Can't parse boolean value [ true ], expected [true] or [false]"),
    ({"term": {"even": ""}}, "Can't parse boolean value [], expected [true] or [false]"),
    ({"term": {"even": 1}}, "Can't parse boolean value [1], expected [true] or [false]"),
    ({"term": {"even": 1.5}}, "Can't parse boolean value [1.5], expected [true] or [false]"),
    ({"match": {"even": "yes"}}, "Can't parse boolean value [yes], expected [true] or [false]"),
    ({"terms": {"even": ["TRUE"]}}, "Can't parse boolean value [TRUE], expected [true] or [false]"),
    ({"range": {"even": {"gte": "yes"}}}, "Can't parse boolean value [yes], expected [true] or [false]"),
    ({"query_string": {"query": "even:TRUE", "lenient": False}},
     "Can't parse boolean value [TRUE], expected [true] or [false]"),
])
def test_term_values_a_field_type_refuses(engine, query, reason):
    with pytest.raises(QueryError) as error:
        engine.search_sync("t", {"query": query})
    assert str(error.value) == "failed to create query: " + reason


# ---------------------------------------------------------------- one-field queries: their two forms and options
# (the refusals are Elasticsearch's, checked against osmem-server; noida-db accepts them all)

@pytest.mark.parametrize("query, reason", [
    ({"term": {"n": 4, "boost": 2}}, "[term] query doesn't support multiple fields, found [n] and [boost]"),
    ({"term": {"n": 4, "_name": "q"}}, "[term] query doesn't support multiple fields, found [n] and [_name]"),
    ({"fuzzy": {"kw": "abc", "boost": 2}}, "[fuzzy] query doesn't support multiple fields, found [kw] and [boost]"),
    ({"match": {"n": 4, "boost": 2}}, "[match] query doesn't support multiple fields, found [n] and [boost]"),
    ({"prefix": {"kw": "a", "low": "a"}}, "[prefix] query doesn't support multiple fields, found [kw] and [low]"),
    ({"term": {}}, "field name is null or empty"),
    ({"term": {"n": {"query": 4}}}, "[term] query does not support [query]"),
    ({"term": {"n": {"value": 4, "foo": 1}}}, "[term] query does not support [foo]"),
    ({"prefix": {"kw": {"value": "a", "foo": 1}}}, "[prefix] query does not support [foo]"),
    ({"wildcard": {"kw": {"value": "a*", "foo": 1}}}, "[wildcard] query does not support [foo]"),
    ({"regexp": {"kw": {"value": "a.c", "foo": 1}}}, "[regexp] query does not support [foo]"),
    ({"fuzzy": {"kw": {"value": "abc", "foo": 1}}}, "[fuzzy] query does not support [foo]"),
    ({"match": {"txt": {"query": "quick", "foo": 1}}}, "[match] query does not support [foo]"),
    ({"match_phrase": {"txt": {"query": "quick", "foo": 1}}}, "[match_phrase] query does not support [foo]"),
    ({"fuzzy": {"kw": {"value": "abc", "case_insensitive": True}}}, "[fuzzy] query does not support [case_insensitive]"),
    # Elasticsearch options the embedded engine does not run: refused, not ignored
    ({"match": {"txt": {"query": "quick fox", "minimum_should_match": 2}}},
     "[match] option [minimum_should_match] is not supported by the embedded engine"),
    ({"match": {"txt": {"query": "quikc", "fuzziness": "AUTO"}}},
     "[match] option [fuzziness] is not supported by the embedded engine"),
    ({"match": {"txt": {"query": "the", "zero_terms_query": "all"}}},
     "[match] option [zero_terms_query] is not supported by the embedded engine"),
    ({"match_phrase": {"txt": {"query": "the", "zero_terms_query": "all"}}},
     "[match_phrase] option [zero_terms_query] is not supported by the embedded engine"),
    ({"regexp": {"kw": {"value": "a.c", "flags": "NONE"}}},
     "[regexp] option [flags] is not supported by the embedded engine"),
    ({"regexp": {"kw": {"value": "a.c", "rewrite": "scoring_boolean"}}},
     "[regexp] option [rewrite] is not supported by the embedded engine"),
    ({"prefix": {"kw": {"value": "a", "rewrite": "top_terms_10"}}},
     "[prefix] option [rewrite] is not supported by the embedded engine"),
    ({"wildcard": {"kw": {"value": "a*", "rewrite": "scoring_boolean"}}},
     "[wildcard] option [rewrite] is not supported by the embedded engine"),
    ({"fuzzy": {"kw": {"value": "abc", "rewrite": "constant_score"}}},
     "[fuzzy] option [rewrite] is not supported by the embedded engine"),
])
def test_one_field_queries_refuse_what_elasticsearch_refuses_or_this_engine_does_not_run(engine, query, reason):
    with pytest.raises(QueryError) as error:
        engine.search_sync("t", {"query": query})
    assert str(error.value) == reason


@pytest.mark.parametrize("query, expected", [
    ({"term": {"n": {"value": 4, "boost": 2, "_name": "four"}}}, [("w4", 2.0)]),
    ({"prefix": {"kw": {"value": "a-", "rewrite": "constant_score"}}}, [("w3", 1.0)]),
    ({"wildcard": {"kw": {"wildcard": "a-?"}}}, [("w3", 1.0)]),
    ({"regexp": {"kw": {"value": "a-c", "flags": "ALL", "max_determinized_states": 100}}}, [("w3", 1.0)]),
    ({"regexp": {"kw": {"value": "a-c", "flags": "all"}}}, [("w3", 1.0)]),
    ({"wildcard": {"kw": {"value": "a-?", "rewrite": "CONSTANT_SCORE_BLENDED"}}}, [("w3", 1.0)]),
])
def test_one_field_queries_take_elasticsearch_options_in_their_object_form(hits, query, expected):
    assert [(doc_id, round(score, 4)) for doc_id, score in hits(query)] == expected


def test_options_at_their_default_value_change_nothing(hits):
    assert hits({"match": {"txt": {"query": "fox", "zero_terms_query": "none"}}}) == hits({"match": {"txt": "fox"}})
    phrase = {"query": "quick brown", "zero_terms_query": "NONE"}
    assert hits({"match_phrase": {"txt": phrase}}) == hits({"match_phrase": {"txt": "quick brown"}}) != []


# ---------------------------------------------------------------- escapes and edges of patterns (Lucene's reading)

@pytest.mark.parametrize("query, expected", [
    ({"regexp": {"kw": "a\\-c"}}, ["a-c"]), ({"regexp": {"kw": "a\\\\c"}}, ["a\\c"]),
    ({"regexp": {"kw": "a[]-a]c"}}, ["a]c", "a^c"]),  # ']' first is a character; ']-a' a range
    ({"regexp": {"kw": "?bc"}}, []),  # an operator with nothing to repeat is the character itself
    ({"wildcard": {"kw": "a\\*"}}, []),  # an escaped wildcard is the character
    ({"wildcard": {"kw": "a\\\\*"}}, ["a\\c"]),
    ({"wildcard": {"kw": "a\\"}}, []),  # a trailing backslash is a backslash (Lucene is lenient there)
    ({"wildcard": {"kw": "a\\?c"}}, []),
    ({"term": {"kw": {"value": "A^C", "case_insensitive": True}}}, ["a^c"]),
    ({"prefix": {"kw": {"value": "A^", "case_insensitive": True}}}, ["a^c"]),
    ({"fuzzy": {"kw": {"value": "abcde", "fuzziness": "AUTO:3,4"}}}, ["abc"]),  # 5 characters: 2 edits
    ({"fuzzy": {"kw": {"value": "abcde", "fuzziness": "AUTO:3,6"}}}, []),  # 1 edit
])
def test_pattern_escapes_and_edges(hits, query, expected):
    assert ids(hits(query)) == with_word(*expected)


# ---------------------------------------------------------------- keyword and fuzzy scores, as Lucene computes them

def keyword_score(docs_with_field, doc_freq, values_per_doc=1.0):
    """BM25 of a keyword term: no norms, no frequencies (Lucene: dl 1, avgdl the values per document)."""
    idf = math.log(1 + (docs_with_field - doc_freq + 0.5) / (doc_freq + 0.5))
    return idf / (1 + 1.2 * (1 - 0.75 + 0.75 / values_per_doc))


def scored(found):
    return [(doc_id, round(score, 6)) for doc_id, score in sorted(found)]


def test_keyword_terms_score_bm25_without_norms(hits):
    assert scored(hits({"term": {"kw": "abc"}})) == [("w0", round(keyword_score(10, 1), 6))]
    assert scored(hits({"term": {"tags": "x"}})) == [("w0", round(keyword_score(2, 1, 1.5), 6))]
    assert scored(hits({"term": {"tags": "tag1"}})) == [("w0", round(keyword_score(2, 2, 1.5), 6)),
                                                      ("w1", round(keyword_score(2, 2, 1.5), 6))]
    assert scored(hits({"term": {"kw": {"value": "abc", "boost": 2}}})) == [("w0", round(2 * keyword_score(10, 1), 6))]


def test_fuzzy_expansions_score_with_their_similarity_and_the_blended_frequency(hits):
    """Lucene's top-terms blended rewrite: each term scores as a keyword term with the highest
    document frequency among the expansions, times 1 - edits / the shorter length."""
    exact, one_edit = keyword_score(10, 1), keyword_score(10, 1) * (1 - 1 / 3)
    found = dict(scored(hits({"fuzzy": {"kw": {"value": "abc", "fuzziness": 1}}})))
    assert found == {doc["_id"]: round(exact if doc["kw"] == "abc" else one_edit, 6) for doc in DOCS
                     if doc.get("kw") in ("abc", "acc", "adc", "a-c", "a]c", "a^c", "a\\c", "azc", "aBc")}
    # the best two by similarity, then by term (code point order): the exact term and "a-c"
    assert scored(hits({"fuzzy": {"kw": {"value": "abc", "fuzziness": 1, "max_expansions": 2}}})) == [
        ("w0", round(exact, 6)), ("w3", round(one_edit, 6))]
    assert scored(hits({"fuzzy": {"kw": {"value": "acb", "fuzziness": 1}}})) == [
        ("w0", round(one_edit, 6)), ("w1", round(one_edit, 6))]  # a transposition is one edit
    assert scored(hits({"fuzzy": {"kw": {"value": "acb", "fuzziness": 1, "transpositions": False}}})) == [
        ("w1", round(one_edit, 6))]


BLEND_DOCS = [{"_id": "b1", "kw": "abc", "txt": "abc"}, {"_id": "b2", "kw": "abc", "txt": "abc"},
              {"_id": "b3", "kw": "abc", "txt": "abc"}, {"_id": "b4", "kw": "abd", "txt": "abd"},
              {"_id": "s1", "solo": "x"},
              {"_id": "e1", "e": ""}, {"_id": "e2", "e": "a"}, {"_id": "e3", "e": "b"}, {"_id": "e4", "e": "ab"}]


@pytest.fixture(scope="module")
def blend_hits(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("blend"))
    mapping = {"properties": {"kw": {"type": "keyword"}, "txt": {"type": "text"}, "solo": {"type": "keyword"},
                              "e": {"type": "keyword"}}}
    build_index(directory, "t", BLEND_DOCS, mapping)
    engine = EmbeddedEngine(directory)
    yield lambda query: dict(scored(
        (hit["_id"], hit["_score"]) for hit in engine.search_sync("t", {"query": query, "size": 100})["hits"]["hits"]))
    asyncio.run(engine.close())


def test_fuzzy_expansions_of_different_frequencies_share_the_highest(blend_hits):
    """Lucene's TopTermsBlendedFreqScoringRewrite: every expansion scores with the highest
    document frequency among them ("abd" is in one document, "abc" in three), on keywords
    and on text alike (there the same length: the scores differ by the similarity only)."""
    exact = keyword_score(4, 3)
    assert blend_hits({"fuzzy": {"kw": {"value": "abc", "fuzziness": 1}}}) == {
        "b1": round(exact, 6), "b2": round(exact, 6), "b3": round(exact, 6), "b4": round(exact * (1 - 1 / 3), 6)}
    text = blend_hits({"fuzzy": {"txt": {"value": "abc", "fuzziness": 1}}})
    assert text.keys() == {"b1", "b2", "b3", "b4"}
    assert text["b4"] == pytest.approx(text["b1"] * (1 - 1 / 3), rel=1e-5)


def test_a_field_one_document_has_scores_with_a_document_count_of_one(blend_hits):
    assert blend_hits({"term": {"solo": "x"}}) == {"s1": round(keyword_score(1, 1), 6)}


def test_fuzzy_on_an_empty_value_reaches_the_terms_its_edits_allow_with_no_similarity(blend_hits):
    """Lucene 9's automaton accepts the terms of up to ``fuzziness`` characters; their
    similarity, 1 - edits / the shorter length, has no value at length 0: they match with
    score 0 (noida-db agrees; osmem-server keeps the exact term only, as Lucene 8 did)."""
    assert blend_hits({"fuzzy": {"e": {"value": "", "fuzziness": 1}}}) == {
        "e1": round(keyword_score(4, 1), 6), "e2": 0.0, "e3": 0.0}
    assert blend_hits({"fuzzy": {"e": {"value": "", "fuzziness": 2}}}) == {
        "e1": round(keyword_score(4, 1), 6), "e2": 0.0, "e3": 0.0, "e4": 0.0}
    # a prefix as long as the value: the edits still apply after it (Lucene 8 matched the exact term only)
    assert blend_hits({"fuzzy": {"kw": {"value": "ab", "fuzziness": 1, "prefix_length": 2}}}).keys() == {
        "b1", "b2", "b3", "b4"}


def test_regexp_length_at_the_limit_and_past_it_in_the_dsl(hits):
    from biothings.web.engines.embedded.query import MAX_REGEX_LENGTH
    at_limit = "[a-z]" * (MAX_REGEX_LENGTH // 5)
    assert hits({"regexp": {"kw": at_limit}}) == []
    with pytest.raises(QueryError) as refused:
        hits({"regexp": {"kw": at_limit + "."}})
    assert str(refused.value) == (f"The length of regex [{MAX_REGEX_LENGTH + 1}] used in the query has "
                                  f"exceeded the allowed maximum of [{MAX_REGEX_LENGTH}].")


# ---------------------------------------------------------------- the options of match_all, ids, bool, multi_match, query_string

def test_a_bool_of_must_not_only_scores_zero_an_empty_one_one(hits):
    """Elasticsearch's bool documentation: must_not clauses run in filter context, "a score
    of 0 for all documents is returned" (osmem-server agrees); an empty bool is match_all."""
    rest = hits({"bool": {"must_not": [{"term": {"kw": "abc"}}], "boost": 3}})
    assert len(rest) == len(DOCS) - 1 and {score for _, score in rest} == {0.0}
    assert {score for _, score in hits({"bool": {"boost": 2}})} == {2.0}
    found = dict(hits({"bool": {"must": [{"bool": {"must_not": [{"term": {"kw": "abc"}}]}}],
                                "should": [const({"kw": "b"}, 1.0)]}}))
    assert found["w9"] == 1.0 and found["t1"] == 0.0 and "w0" not in found


def test_match_all_and_ids_take_a_boost(hits):
    assert {score for _, score in hits({"match_all": {"boost": 3}})} == {3.0}
    assert {score for _, score in hits({"match_all": {}})} == {1.0}
    assert sorted(hits({"ids": {"values": ["w1", "t1", "nosuch"], "boost": 2}})) == [("t1", 2.0), ("w1", 2.0)]
    assert hits({"ids": {}}) == [] and hits({"ids": {"values": []}}) == []
    for spec, message in ((["w1"], "[ids] query malformed, no start_object after query name"),
                          ({"values": ["w1"], "foo": 1}, "[ids] query does not support [foo]")):
        with pytest.raises(QueryError) as refused:  # Elasticsearch's refusals (osmem-server's too)
            hits({"ids": spec})
        assert str(refused.value) == message


def test_multi_match_options(hits):
    both = {"query": "quick abc", "fields": ["kw", "txt"]}
    plain = dict(hits({"multi_match": both}))
    assert dict(hits({"multi_match": {**both, "boost": 2}})) == {k: pytest.approx(2 * v) for k, v in plain.items()}
    assert sorted(plain) == ["t1", "t2"]  # operator or, by default (a keyword takes the whole text)
    assert hits({"multi_match": {**both, "operator": "and"}}) == []
    assert ids(hits({"multi_match": {"query": "quick fox", "fields": ["txt"], "operator": "and"}})) == ["t1"]
    boosted_field = dict(hits({"multi_match": {"query": "abc", "fields": ["kw^3"]}}))
    assert boosted_field == {"w0": pytest.approx(3 * keyword_score(10, 1))}
    # tie_breaker: the best field plus that much of the others
    one = {"query": "abc", "fields": ["kw", "low"]}
    kw, low = keyword_score(10, 1), keyword_score(10, 2)  # "low" is normalized: "abc" and "aBc"
    assert dict(hits({"multi_match": one}))["w0"] == pytest.approx(kw)
    assert dict(hits({"multi_match": {**one, "tie_breaker": 0.5}}))["w0"] == pytest.approx(kw + 0.5 * low)
    phrase = {"query": "quick fox", "fields": ["txt"], "type": "phrase"}
    assert hits({"multi_match": phrase}) == []
    assert ids(hits({"multi_match": {**phrase, "slop": 1}})) == ["t1"]
    with pytest.raises(QueryError) as refused:
        hits({"multi_match": {"query": "quick", "type": "cross_fields"}})
    assert str(refused.value) == "[multi_match] type [cross_fields] is not supported by the embedded engine"


def test_query_string_options(hits):
    assert hits({"query_string": "kw:abc"}) == hits({"query_string": {"query": "kw:abc"}}) != []
    base = dict(hits({"query_string": {"query": "quick fox", "fields": ["txt"]}}))
    assert sorted(base) == ["t1", "t2"]  # OR by default
    assert dict(hits({"query_string": {"query": "quick fox", "fields": ["txt"], "boost": 2}})) == {
        k: pytest.approx(2 * v) for k, v in base.items()}
    assert ids(hits({"query_string": {"query": "quick fox", "fields": ["txt"], "default_operator": "and"}})) == ["t1"]
    assert ids(hits({"query_string": {"query": "abc", "fields": []}})) == ["w0", "w8"]  # no fields: all of them
    assert ids(hits({"query_string": {"query": "abc", "fields": ["kw"], "type": "best_fields"}})) == ["w0"]
    for spec, message in (({"fields": ["txt"]}, "[query_string] requires a [query] string"),
                          ({"query": "quick", "type": "most_fields"},
                           "[query_string] type [most_fields] is not supported by the embedded engine"),
                          ({"query": "quick", "foo": 1, "bar": 2}, "[query_string] query does not support [bar]")):
        with pytest.raises(QueryError) as refused:
            hits({"query_string": spec})
        assert str(refused.value) == message


def test_exists_on_id_patterns_and_objects(hits):
    assert len(hits({"exists": {"field": "_id"}})) == len(DOCS)
    assert ids(hits({"exists": {"field": "t?t"}})) == ["t1", "t2"]
    assert ids(hits({"exists": {"field": "tx*"}})) == ["t1", "t2"]
    assert ids(hits({"exists": {"field": "ta?s"}})) == ["w0", "w1"]
    assert hits({"exists": {"field": "nosuch"}}) == [] and hits({"exists": {"field": "no?such"}}) == []


def test_terms_refuse_values_the_field_cannot_take_and_take_a_boost(hits):
    with pytest.raises(QueryError):
        hits({"terms": {"n": ["4", "abc"]}})
    assert sorted(hits({"terms": {"kw": ["abc", "b"], "boost": 2}})) == [("w0", 2.0), ("w9", 2.0)]
    assert sorted(hits({"terms": {"_id": ["w1", "t1"]}})) == [("t1", 1.0), ("w1", 1.0)]


def test_query_string_fuzzy_phrase_analyzer_and_tie_breaker_options(hits):

    def run(query, **options):
        return hits({"query_string": {"query": query, **options}})
    assert ids(run("txt:Quick")) == ["t1", "t2"] and run("txt:Quick", analyzer="whitespace") == []
    assert ids(run("kw:abd~")) == ["w0"] and run("kw:abd~", fuzziness=0) == []  # AUTO: 1 edit at 3 characters
    assert ids(run("kw:abc~1", fuzzy_max_expansions=2)) == ["w0", "w3"]
    assert ids(run("kw:bbc~1")) == ["w0"] and run("kw:bbc~1", fuzzy_prefix_length=1) == []
    assert ids(run("kw:acb~1")) == ["w0", "w1"] and ids(run("kw:acb~1", fuzzy_transpositions=False)) == ["w1"]
    assert run('txt:"quick fox"') == [] and ids(run('txt:"quick fox"', phrase_slop=1)) == ["t1"]
    kw, low = keyword_score(10, 1), keyword_score(10, 2)
    assert dict(run("abc", fields=["kw", "low"]))["w0"] == pytest.approx(kw)
    assert dict(run("abc", fields=["kw", "low"], tie_breaker=0.5))["w0"] == pytest.approx(kw + 0.5 * low)
    assert ids(run("kw:abc kw:b")) == ["w0", "w9"] and run("kw:abc kw:b", default_operator="AND") == []
    assert {score for _, score in run("-kw:abc")} == {0.0}  # a negative group: a filter (ES fixNegativeQueryIfNeeded)


def test_clauses_at_the_limit_and_one_past(engine):
    from biothings.web.engines.embedded.query import MAX_CLAUSE_COUNT
    for build in (lambda n: {"bool": {"should": [{"term": {"kw": str(i)}} for i in range(n)]}},
                  lambda n: {"query_string": {"query": " ".join(f"kw:{i}" for i in range(n))}}):
        assert engine.search_sync("t", {"query": build(MAX_CLAUSE_COUNT)})["hits"]["total"]["value"] == 0
        with pytest.raises(QueryError) as refused:
            engine.search_sync("t", {"query": build(MAX_CLAUSE_COUNT + 1)})
        assert str(refused.value) == (f"the query expands to more than {MAX_CLAUSE_COUNT} clauses "
                                      "(terms times fields, fuzzy expansions): make it simpler")


def test_field_expansion_at_the_limit_and_one_past(tmp_path):
    """A field pattern of query_string may name up to 16,384 fields (Lucene's clause count,
    as Elasticsearch checks it): at the limit it runs, one field more is refused."""
    from biothings.web.engines.embedded.query import MAX_CLAUSE_COUNT
    for name, count in (("at", MAX_CLAUSE_COUNT), ("past", MAX_CLAUSE_COUNT + 1)):
        mapping = {"settings": {"index.mapping.total_fields.limit": count + 1},
                   "mappings": {"properties": {f"f{i}": {"type": "keyword"} for i in range(count)}}}
        build_index(str(tmp_path), name, [{"_id": "1", "f7": "x"}], mapping)
    engine = EmbeddedEngine(str(tmp_path))
    try:
        query = {"query": {"query_string": {"query": "f\\*:x"}}}
        assert [hit["_id"] for hit in engine.search_sync("at", query)["hits"]["hits"]] == ["1"]
        with pytest.raises(QueryError) as refused:
            engine.search_sync("past", query)
        assert str(refused.value) == (f"field expansion for [f*] matches too many fields, "
                                      f"limit: {MAX_CLAUSE_COUNT}, got: {MAX_CLAUSE_COUNT + 1}")
    finally:
        asyncio.run(engine.close())


def test_query_string_boosts_ranges_and_empty_analysis(hits):
    kw = keyword_score(10, 1)
    assert dict(hits({"query_string": {"query": "kw:abc^2"}})) == {"w0": pytest.approx(2 * kw)}
    assert dict(hits({"query_string": {"query": "abc", "fields": ["kw^3"]}})) == {"w0": pytest.approx(3 * kw)}
    assert ids(hits({"query_string": {"query": "n:{1 TO 3]"}})) == ["w2", "w3"]
    assert ids(hits({"query_string": {"query": "n:[1 TO 3}"}})) == ["w1", "w2"]
    assert hits({"query_string": {"query": "n:[a TO b]"}}) == []  # over all fields: lenient
    assert hits({"query_string": {"query": "txt:,"}}) == []  # the analyzer leaves no token
    from biothings.web.engines.embedded.query import MAX_QUERY_DEPTH
    def nested(depth):
        return "(" * depth + "kw:abc" + ")" * depth
    assert ids(hits({"query_string": {"query": nested(MAX_QUERY_DEPTH)}})) == ["w0"]
    with pytest.raises(QueryError) as refused:
        hits({"query_string": {"query": nested(MAX_QUERY_DEPTH + 1)}})
    assert f"deeper than {MAX_QUERY_DEPTH} levels" in str(refused.value)


@pytest.mark.parametrize("bool_query, expected", [
    ({"must": [{"term": {"kw": "abc"}}], "minimum_should_match": 1}, []),  # no should clause to match
    ({"filter": [{"term": {"kw": "abc"}}], "minimum_should_match": 1}, []),
    ({"must": [{"term": {"kw": "abc"}}], "minimum_should_match": 0}, ["w0"]),
    ({"must": [{"term": {"kw": "abc"}}], "minimum_should_match": "50%"}, ["w0"]),  # 50% of none
    ({"must": [{"term": {"kw": "abc"}}], "minimum_should_match": -1}, ["w0"]),
    ({"minimum_should_match": 1}, [doc["_id"] for doc in DOCS]),  # an empty bool: match_all first
    ({"must": [{"term": {"nosuch": "x"}}]}, []), ({"should": [{"term": {"nosuch": "x"}}, {"term": {"kw": "b"}}]}, ["w9"]),
])
def test_minimum_should_match_without_should_clauses(hits, bool_query, expected):
    """Elasticsearch applies minimum_should_match to the Lucene query it built: with no should
    clause, 1 matches nothing (osmem-server agrees); an empty bool is match_all before it applies."""
    assert ids(hits({"bool": bool_query})) == sorted(expected)


def test_match_leniency_analyzer_on_keywords_and_terms_named(hits):
    assert hits({"match": {"n": {"query": "abc", "lenient": True}}}) == []
    assert hits({"multi_match": {"query": "abc", "fields": ["n"], "type": "phrase", "lenient": True}}) == []
    assert hits({"match": {"kw": {"query": "a-c", "analyzer": "standard"}}}) == []  # the analyzer given applies
    assert ids(hits({"match": {"kw": "a-c"}})) == ["w3"]  # else the keyword's whole value
    assert ids(hits({"terms": {"kw": ["abc"], "_name": "named"}})) == ["w0"]
    with pytest.raises(QueryError) as refused:
        hits({"match_phrase": {"kw": {"query": "a-c", "analyzer": "standard"}}})
    assert str(refused.value) == "field:[kw] was indexed without position data; cannot run PhraseQuery"


def test_range_bounds_read_as_elasticsearch_reads_them(hits, engine):
    """Answers and refusals checked against osmem-server."""
    assert hits({"query_string": {"query": "x:[abc TO 2]"}}) == []  # over all fields: lenient, nothing
    assert hits({"query_string": {"query": "n:[1 TO abc]"}}) == []
    assert hits({"query_string": {"query": "n:[1 TO 99999999999]"}}) == []
    for bounds, reason in (({"lte": "Infinity"}, "Value [Infinity] is out of range for an integer"),
                           ({"gte": "-Infinity", "lte": 2}, "Value [-Infinity] is out of range for an integer")):
        with pytest.raises(QueryError) as refused:
            hits({"range": {"n": bounds}})
        assert str(refused.value) == "failed to create query: " + reason
    with pytest.raises(QueryError) as refused:
        hits({"range": {"big": {"gte": "9223372036854775808"}}})
    assert str(refused.value) == "failed to create query: Value [9223372036854775808] is out of range for a long"
    assert ids(hits({"term": {"n": "4D"}})) == ["w4"]  # Java's double syntax takes D and F in either case
    assert ids(hits({"term": {"even": "false"}})) == ["w1", "w3", "w5", "w7", "w9"]
    for number, shown in ((10 ** 400, "Infinity"), (-10 ** 400, "-Infinity")):  # past any double
        with pytest.raises(QueryError) as refused:
            engine.search_sync("t", {"query": {"term": {"x": number}}})
        assert str(refused.value) == f"failed to create query: [double] supports only finite values, but got [{shown}]"


def test_text_terms_score_bm25(hits):
    """Lucene's BM25 without the (k1 + 1) factor, idf over the documents having the field; the
    length normalisation is tantivy's: the average length over every document of the index
    (Lucene: over those having the field; docs/embedded.md says so)."""
    docs_with_txt, every_doc = 2, len(DOCS)
    average = (4 + 2) / every_doc  # "The quick brown fox", "quick quick"

    def bm25(term_freq, length, doc_freq, boost=1.0):
        idf = math.log(1 + (docs_with_txt - doc_freq + 0.5) / (doc_freq + 0.5))
        return boost * idf * term_freq / (term_freq + 1.2 * (1 - 0.75 + 0.75 * length / average))
    assert dict(hits({"term": {"txt": "quick"}})) == {"t1": pytest.approx(bm25(1, 4, 2)),
                                                      "t2": pytest.approx(bm25(2, 2, 2))}
    assert dict(hits({"term": {"txt": "fox"}})) == {"t1": pytest.approx(bm25(1, 4, 1))}
    # a fuzzy text term: each expansion with the highest document frequency among them, times its similarity
    assert dict(hits({"fuzzy": {"txt": {"value": "fix", "fuzziness": 1}}})) == {
        "t1": pytest.approx(bm25(1, 4, 1, boost=1 - 1 / 3))}
    assert dict(hits({"fuzzy": {"txt": {"value": "quick", "fuzziness": 0}}})) == dict(hits({"term": {"txt": "quick"}}))


@pytest.mark.parametrize("query, reason", [
    ({"nosuch": {}}, "unknown query [nosuch]"),
    ({"term": {"kw": "a"}, "match": {"kw": "b"}},
     "[query] malformed query, expected a single clause object: {'term': {'kw': 'a'}, 'match': {'kw': 'b'}}"),
    ({"bool": {"must": "x"}}, "[query] malformed query, expected a single clause object: 'x'"),
    ({"term": {"kw": {"boost": 2}}}, "[term] query requires a value"),
    ({"match": {"txt": {"boost": 2}}}, "[match] query requires a [query]"),
    ({"term": {"kw": {"value": "abc", "boost": "x"}}}, "[boost] must be a number, got 'x'"),
    ({"term": {"kw": {"value": "abc", "boost": -1}}}, "negative [boost] is not allowed, got [-1.0]"),
    ({"match": {"txt": {"query": "a", "analyzer": "nosuch"}}}, "analyzer [nosuch] not found"),
    ({"range": {"_id": {"gte": "a"}}}, "Field [_id] of type [_id] does not support range queries"),
    ({"multi_match": {"query": "a", "fields": ["kw^x"]}}, "invalid boost in field [kw^x]"),
])
def test_malformed_queries_say_what_is_wrong(engine, query, reason):
    with pytest.raises(QueryError) as refused:
        engine.search_sync("t", {"query": query})
    assert str(refused.value) == reason


def test_a_boost_of_zero_or_below_one_is_taken_and_phrases_are_lenient_over_all_fields(hits):
    assert hits({"term": {"kw": {"value": "abc", "boost": 0}}}) == [("w0", 0.0)]
    assert dict(hits({"term": {"kw": {"value": "abc", "boost": 0.5}}})) == {
        "w0": pytest.approx(0.5 * keyword_score(10, 1))}
    assert hits({"query_string": {"query": 'n:"1 2"'}}) == []  # a phrase on a number: nothing, no error


def test_match_and_regexp_boosts_and_query_string_comparisons(hits):
    plain = dict(hits({"match": {"txt": "fox"}}))
    assert dict(hits({"match": {"txt": {"query": "fox", "boost": 2}}})) == {k: pytest.approx(2 * v) for k, v in plain.items()}
    assert hits({"regexp": {"kw": {"value": "ab.", "boost": 2}}}) == [("w0", 2.0)]
    for query, expected in (("n:>=9", ["t1", "t2", "w9"]), ("n:>9", ["t1", "t2"]), ("n:<1", ["w0"]),
                            ("n:<=1", ["w0", "w1"]), ("n:>100", ["t2"])):
        assert ids(hits({"query_string": {"query": query}})) == expected, query


def test_a_json_false_is_the_word_false_for_strings_and_in_messages(hits):
    assert hits({"term": {"kw": False}}) == []  # no keyword "false" here; the word, not "true"
    with pytest.raises(QueryError) as refused:
        hits({"term": {"n": False}})
    assert str(refused.value) == 'failed to create query: For input string: "false" on field [n] of type [integer]'


def test_a_range_without_its_bounds_object_and_a_clause_that_breaks_inside(engine):
    with pytest.raises(QueryError) as refused:  # Elasticsearch's message (osmem-server's too)
        engine.search_sync("t", {"query": {"range": {"n": 5}}})
    assert str(refused.value) == "[range] query does not support [n]"
    with pytest.raises(QueryError) as refused:  # an error inside a clause names the clause
        engine.search_sync("t", {"query": {"dis_max": {"queries": 5}}})
    assert str(refused.value).startswith("[dis_max] malformed query: ")
