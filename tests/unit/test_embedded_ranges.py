"""Ranges on the embedded engine against Elasticsearch's definition: keyword terms compare as
UTF-8 bytes, i.e. by code point (the oracle here is Python's own string order, which is that);
booleans are 0 and 1 (false < true); a nested query is its inner query on flattened objects."""

import asyncio
import itertools

import pytest

from biothings.web.engines.embedded import EmbeddedEngine, build_index

# prefixes of each other, neighbours by one code point, below and above ASCII, outside the BMP
WORDS = ["", "a", "ab", "abc", "abd", "ac", "b", "ba", "B", "Z", "a\u0000", "a\u007f", "é", "éa", "ê",
         "\uffff", "\U0001f600", "\U0010ffff", "zz", "1p", "1q", "1p36"]
DOCS = [{"_id": str(n), "kw": word, "flag": n % 3 == 0, "obj": {"k": word}} for n, word in enumerate(WORDS)]
DOCS.append({"_id": "no-values"})
MAPPING = {"properties": {"kw": {"type": "keyword"}, "flag": {"type": "boolean"},
                          "obj": {"properties": {"k": {"type": "keyword"}}}}}


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("ranges"))
    build_index(directory, "t", DOCS, MAPPING)
    engine = EmbeddedEngine(directory)

    def ids(query):
        hits = engine.search_sync("t", {"query": query, "size": 100})["hits"]["hits"]
        return sorted(hit["_id"] for hit in hits)
    yield ids
    asyncio.run(engine.close())


def expected(keep):
    return sorted(doc["_id"] for doc in DOCS if "kw" in doc and keep(doc["kw"]))


BOUNDS = ["a", "ab", "abc", "ac", "b", "c", "é", "\U0001f600", "1p", "1q", "", "a\u0000", "a\u0001", "\uffff"]


@pytest.mark.parametrize("lower_op", ["gt", "gte"])
@pytest.mark.parametrize("upper_op", ["lt", "lte"])
def test_keyword_ranges_follow_code_point_order(search, lower_op, upper_op):
    for lower, upper in itertools.product(BOUNDS, repeat=2):
        def keep(word):
            above = word > lower if lower_op == "gt" else word >= lower
            below = word < upper if upper_op == "lt" else word <= upper
            return above and below
        query = {"range": {"kw": {lower_op: lower, upper_op: upper}}}
        assert search(query) == expected(keep), (lower_op, lower, upper_op, upper)


@pytest.mark.parametrize("op", ["gt", "gte", "lt", "lte"])
def test_keyword_ranges_with_one_bound(search, op):
    compare = {"gt": str.__gt__, "gte": str.__ge__, "lt": str.__lt__, "lte": str.__le__}[op]
    for bound in BOUNDS + ["\U0010ffff", "zz"]:
        assert search({"range": {"kw": {op: bound}}}) == expected(lambda word: compare(word, bound)), (op, bound)


@pytest.mark.parametrize("bounds, flags", [
    ({"gte": False}, [False, True]), ({"gt": False}, [True]), ({"lt": True}, [False]), ({"lte": True}, [False, True]),
    ({"gt": True}, []), ({"lt": False}, []), ({"gte": "true"}, [True]), ({"lte": "false"}, [False]),
    ({"gt": False, "lt": True}, []), ({"gte": False, "lte": False}, [False]),
])
def test_boolean_ranges_order_false_before_true(search, bounds, flags):
    assert search({"range": {"flag": bounds}}) == sorted(
        doc["_id"] for doc in DOCS if "flag" in doc and doc["flag"] in flags)


def test_a_nested_query_is_its_inner_query(search):
    inner = {"range": {"obj.k": {"gte": "a", "lt": "b"}}}
    assert search({"nested": {"path": "obj", "query": inner}}) == search(inner) == expected(lambda w: "a" <= w < "b")


LONG_MAX = 2 ** 63 - 1


@pytest.fixture(scope="module")
def longs(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("longs"))
    docs = [{"_id": "max", "b": LONG_MAX}, {"_id": "max-1", "b": LONG_MAX - 1}, {"_id": "min", "b": -LONG_MAX - 1}]
    build_index(directory, "t", docs, {"properties": {"b": {"type": "long"}}})
    engine = EmbeddedEngine(directory)
    yield engine
    asyncio.run(engine.close())


@pytest.mark.parametrize("bounds, found", [
    ({"gte": LONG_MAX}, ["max"]), ({"gte": str(LONG_MAX)}, ["max"]), ({"gt": str(LONG_MAX - 1)}, ["max"]),
    ({"lte": str(LONG_MAX - 1), "gt": 0}, ["max-1"]), ({"lt": LONG_MAX, "gte": LONG_MAX - 1}, ["max-1"]),
    ({"lte": -LONG_MAX - 1}, ["min"]), ({"lte": str(-LONG_MAX - 1)}, ["min"]), ({"gt": LONG_MAX}, []),
    ({"gte": f" {LONG_MAX} "}, ["max"]), ({"gte": "9.2e18"}, ["max", "max-1"]), ({"lt": -LONG_MAX - 1}, []),
])
def test_long_bounds_are_read_exactly(longs, bounds, found):
    """Lucene's LongPoint ranges are exact, and Elasticsearch reads a whole-number bound as a
    long (a double would make 2**63 - 1 into 2**63: out of range). Both imitations keep longs as
    doubles, so neither can check this; the oracle is the integers themselves."""
    hits = longs.search_sync("t", {"query": {"range": {"b": bounds}}})["hits"]["hits"]
    assert sorted(hit["_id"] for hit in hits) == sorted(found)


@pytest.mark.parametrize("bound", [str(LONG_MAX + 1), LONG_MAX + 1, str(-LONG_MAX - 2)])
def test_a_long_bound_one_past_the_type_is_refused(longs, bound):
    from biothings.web.engines.errors import QueryError
    with pytest.raises(QueryError) as refused:
        longs.search_sync("t", {"query": {"range": {"b": {"gte": bound}}}})
    assert str(refused.value) == f"failed to create query: Value [{bound}] is out of range for a long"
