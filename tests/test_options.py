"""``Options``: attribute reads of declared and undeclared names."""

from biothings.web.options import Options, OptionSet


def test_declared_names_read_fast_and_undeclared_read_none():
    OptionSet({"species": {"type": list}, "items": {"type": str}, "get": {"type": str}})
    options = Options(species=["human"], items="x")
    assert isinstance(vars(Options).get("species"), property)
    assert options.species == ["human"]
    assert options.annotation is None and options.not_declared_anywhere is None
    options.annotation = True
    options.extra = 3
    assert options == {"species": ["human"], "items": "x", "annotation": True, "extra": 3}
    assert options.annotation is True and options.extra == 3
    # names of dict methods stay methods
    assert options.get("items") == "x" and ("items", "x") in options.items()
    assert Options(species=None).species is None
