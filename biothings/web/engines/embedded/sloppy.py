"""Phrases with a slop, scored as Lucene scores them.

tantivy and Lucene match the same documents for ``"protein kinase"~2`` (the words within
two moves of each other, a swap costing two), but count the matches of a document
differently: tantivy's term frequency is their number, Lucene's ``SloppyPhraseMatcher``
adds ``1 / (1 + distance)`` for each match it finds, so a loose match counts less than
an exact one. BM25 is not linear in the frequency, so no boost turns one into the other.

``lucene_sloppy_phrase`` therefore scores the matches itself: it finds them with
tantivy's phrase query, reads each one's positions from its stored source (analysed
again, as indexed), computes Lucene's frequency, recovers the document's length norm
from tantivy's score of the first word (whose frequency is known), and answers a
query that gives each matching document its Lucene score. Up to ``MAX_RESCORED``
matches; a phrase matching more, or repeating a word (Lucene's matcher then follows
another path), keeps tantivy's scores (docs/embedded.md lists it).
"""

import heapq

import orjson
import tantivy

Q = tantivy.Query
MUST, SHOULD = tantivy.Occur.Must, tantivy.Occur.Should

# Most matches rescored; a phrase matching more keeps tantivy's match-count scores.
MAX_RESCORED = 10_000


def sloppy_frequency(positions, slop):
    """Lucene's sloppy frequency of one document: ``positions[i]`` are the sorted positions
    of the phrase's word ``i`` (distinct words). Each match found adds ``1 / (1 + d)``,
    ``d`` the moves it takes; the matches are those ``SloppyPhraseMatcher.nextMatch``
    finds (the shortest window ending at each advance), not every combination."""
    if not all(positions):
        return 0.0
    # a word's positions less its place in the phrase: an exact match puts all at one value
    lists = [[position - place for position in found] for place, found in enumerate(positions)]
    cursor = [0] * len(lists)
    end = max(found[0] for found in lists)
    queue = [(found[0], place) for place, found in enumerate(lists)]  # ties: the earlier word first
    heapq.heapify(queue)
    frequency = 0.0
    while True:
        position, place = heapq.heappop(queue)
        match_length = end - position
        following = queue[0][0]
        matched = False
        while True:
            cursor[place] += 1
            if cursor[place] == len(lists[place]):
                break  # this word has no further position: the last match, if any
            position = lists[place][cursor[place]]
            end = max(end, position)
            if position > following:  # this window is as short as it gets
                heapq.heappush(queue, (position, place))
                if match_length <= slop:
                    matched = True
                    break
                position, place = heapq.heappop(queue)
                following = queue[0][0]
                match_length = end - position
            else:
                match_length = min(match_length, end - position)
        if match_length <= slop:
            frequency += 1.0 / (1.0 + match_length)
        if not matched:
            return frequency


def _average_length(explanation):
    """tantivy's ``avgdl`` in a term query's explanation (a JSON tree)."""
    stack = [orjson.loads(explanation.to_json())]
    while stack:
        node = stack.pop()
        if str(node.get("description", "")).startswith("avgdl"):
            return float(node["value"])
        stack.extend(node.get("details") or [])
    return None


def lucene_sloppy_phrase(compiler, field, tokens, slop, query, lucene_idf, tantivy_idfs, k1, b):
    """A query matching what the tantivy phrase ``query`` matches, each document scored as
    Lucene's BM25 scores the sloppy phrase (``lucene_idf``: the sum of the words' idf);
    None when it keeps tantivy's scores (see the module)."""
    if len(set(tokens)) != len(tokens):
        return None
    searcher, schema = compiler.searcher, compiler.schema
    first = Q.term_query(schema, field.tname, tokens[0])
    # the first word's score within the phrase's matches: its frequency is read from the
    # source, so this score gives the document's length norm
    probe = Q.boolean_query([(MUST, first), (MUST, Q.const_score_query(query, 0.0))])
    found = searcher.search(probe, MAX_RESCORED + 1).hits
    if not found or len(found) > MAX_RESCORED:
        return None
    average = _average_length(first.explain(searcher, found[0][1]))
    if not average:
        return None
    analyzer = compiler.layout.analysis.analyzer(field.analyzer)
    weight = tantivy_idfs[0] * (1 + k1)
    by_score = {}
    for score, address in found:
        doc = searcher.doc(address)
        values = compiler.layout.indexed_text(field, orjson.loads(doc.get_first("_source")))
        positions = analyzer.positions(values, tokens)
        frequency = sloppy_frequency([positions[token] for token in tokens], slop)
        count = len(positions[tokens[0]])
        if frequency <= 0 or not count or score <= 0:
            continue  # not a match as Lucene finds them
        norm = weight * count / score - count  # k1 (1 - b + b dl / avgdl), rounded by f32
        length = max(round((norm / k1 - 1 + b) * average / b), 0)  # dl: a whole number
        norm = k1 * (1 - b + b * length / average)
        by_score.setdefault(lucene_idf * frequency / (frequency + norm), []).append(doc.get_first("_id"))
    if not by_score:
        return Q.empty_query()
    return Q.boolean_query([(SHOULD, Q.const_score_query(Q.term_set_query(schema, "_id", ids), score))
                            for score, ids in by_score.items()])
