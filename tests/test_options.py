"""``Options``: attribute reads of declared and undeclared names."""

from biothings.web.options import Options, OptionSet, _split_items, split_list


def test_declared_names_read_fast_and_undeclared_read_none():
    optionset = OptionSet({"species": {"type": list}, "size": {"type": int, "default": 10}})
    options = optionset.parse(query={"species": ["human"]})
    assert isinstance(vars(type(options)).get("species"), property)
    assert options.species == ["human"] and options.size == 10
    assert options.annotation is None and options.not_declared_anywhere is None
    options.annotation = True
    options.extra = 3
    assert options == {"species": ["human"], "size": 10, "annotation": True, "extra": 3}
    assert options.annotation is True and options.extra == 3
    assert Options(species=None).species is None


def test_option_names_that_are_dict_methods_are_options():
    names = ["values", "keys", "items", "get", "copy", "pop", "update"]
    optionset = OptionSet({name: {"type": str} for name in names})
    options = optionset.parse(query={"values": ["v"], "get": ["g"], "copy": ["c"]})
    assert options.values == "v" and options.get == "g" and options.copy == "c"
    assert options.keys is None and options.items is None  # declared, not given: their default
    assert dict.get(options, "values") == "v" and dict(options)["get"] == "g"
    # another API's options keep the dict methods
    plain = OptionSet({"size": {"type": int}}).parse(query={"size": ["3"]})
    assert plain.get("size") == 3 and list(plain.items()) == [("size", 3)]


def test_plain_comma_lists_split_like_the_general_rule():
    # split_list takes a str.split shortcut for "a,b,c"; it must agree with the full rule
    samples = ["1017,1018,1019", "CDK2", "a,,b", "a,", ",a", ",", "", "a, b", "a|b", "a+b", "a b",
               '"x y",z', 'a,"b"', '""', "a\tb,c", "ENSG0001,NM_000075.4,p33(CDK2)", "a,b|c,d",
               "α,β", "a,\nb"]
    for text in samples:
        assert split_list(text) == _split_items(text), text
    assert split_list("1017,1018") == ["1017", "1018"]
    assert split_list('a, b|c "d e"') == ["a", "b", "c", "d e"]
