"""The demo gene data as the tests see it, read straight from the shipped files."""

import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the project
DEMO = os.path.join(ROOT, "biothings", "web", "demo")
DOCUMENTS_PATH = os.path.join(DEMO, "genes.ndjson")
MAPPING_PATH = os.path.join(DEMO, "genes.mapping.json")
META_PATH = os.path.join(DEMO, "genes.meta.json")


def load_documents():
    with open(DOCUMENTS_PATH, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_json(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


DOCS = load_documents()
BY_ID = {doc["_id"]: doc for doc in DOCS}
MAPPING = load_json(MAPPING_PATH)
META = load_json(META_PATH)


def values(doc, path):
    """Every value at a dotted path of a document (lists walked)."""
    current = [doc]
    for key in path.split("."):
        found = []
        for node in current:
            for item in node if isinstance(node, list) else [node]:
                if isinstance(item, dict) and key in item:
                    value = item[key]
                    found.extend(value if isinstance(value, list) else [value])
        current = found
    return current


def _fields(properties, prefix=""):
    for name, spec in properties.items():
        path = f"{prefix}{name}"
        if "properties" in spec:
            yield from _fields(spec["properties"], path + ".")
        else:
            yield path, spec.get("type")


FIELD_TYPES = dict(_fields(MAPPING["properties"]))
TEXT_FIELDS = [field for field, kind in FIELD_TYPES.items() if kind == "text"]


def tokens(text):
    """Standard-analyzer-like tokens of a text value."""
    import re
    return re.findall(r"[a-z0-9]+", str(text).lower())


def ids_where(predicate):
    return {doc["_id"] for doc in DOCS if predicate(doc)}


def text_match(doc, field, word):
    return any(word in tokens(value) for value in values(doc, field))


def phrase_match(doc, field, phrase):
    wanted = tokens(phrase)
    for value in values(doc, field):
        found = tokens(value)
        for start in range(len(found) - len(wanted) + 1):
            if found[start:start + len(wanted)] == wanted:
                return True
    return False
