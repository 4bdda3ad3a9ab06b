"""``Options``: attribute reads of declared and undeclared names."""

from biothings.web.options import Options, OptionSet, _split_items, split_list


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


def test_plain_comma_lists_split_like_the_general_rule():
    # split_list takes a str.split shortcut for "a,b,c"; it must agree with the full rule
    samples = ["1017,1018,1019", "CDK2", "a,,b", "a,", ",a", ",", "", "a, b", "a|b", "a+b", "a b",
               '"x y",z', 'a,"b"', '""', "a\tb,c", "ENSG0001,NM_000075.4,p33(CDK2)", "a,b|c,d",
               "α,β", "a,\nb"]
    for text in samples:
        assert split_list(text) == _split_items(text), text
    assert split_list("1017,1018") == ["1017", "1018"]
    assert split_list('a, b|c "d e"') == ["a", "b", "c", "d e"]
