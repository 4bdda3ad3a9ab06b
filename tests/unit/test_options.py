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


# ---------------------------------------------------------------- conversions, word by word

import pytest  # noqa: E402

from biothings.web.options import FALSE_WORDS, TRUE_WORDS, OptionError  # noqa: E402


def parse(spec, **sources):
    """Parse with one declared option ``x``; answers its value."""
    return OptionSet({"x": spec}).parse(**sources)["x"]


def refused(spec, **sources):
    """The ``OptionError`` of a parse that must fail: its reason and body."""
    with pytest.raises(OptionError) as error:
        OptionSet({"x": spec, "y": {"type": str, "alias": "why"}}).parse(**sources)
    return error.value


def test_the_boolean_words_are_exactly_these():
    assert TRUE_WORDS == {"1", "true", "yes", "y", "t", "on", ""}
    assert FALSE_WORDS == {"0", "false", "no", "n", "f", "off"}


@pytest.mark.parametrize("word", ["1", "true", "yes", "y", "t", "on", "", "TRUE", "Yes", "Y", "T", "On", " on "])
def test_every_true_word_in_any_case_is_true(word):
    assert parse({"type": bool}, query={"x": [word]}) is True


@pytest.mark.parametrize("word", ["0", "false", "no", "n", "f", "off", "FALSE", "No", "N", "F", "OFF", " off "])
def test_every_false_word_in_any_case_is_false(word):
    assert parse({"type": bool, "default": True}, query={"x": [word]}) is False


@pytest.mark.parametrize("word", ["2", "truthy", "nope", "-1", "o", "yes!", "1.0"])
def test_other_words_are_not_booleans(word):
    error = refused({"type": bool}, query={"x": [word]})
    assert error.reason == "Expected a boolean for 'x'."
    assert error.body == {"keyword": "x", "alias": "x"}


@pytest.mark.parametrize("value, expected", [(True, True), (False, False), (1, True), (0, False), (1.0, True)])
def test_json_booleans_and_zero_or_one(value, expected):
    assert parse({"type": bool}, json_body={"x": value}) is expected


@pytest.mark.parametrize("value", [2, -1, 0.5, [], {}, "maybe"])
def test_other_json_values_are_not_booleans(value):
    assert refused({"type": bool}, json_body={"x": value}).reason == "Expected a boolean for 'x'."


@pytest.mark.parametrize("text, expected", [("5", 5), (" 5 ", 5), ("-3", -3), ("+7", 7), ("0", 0),
                                             ("12345678901234567890", 12345678901234567890)])
def test_ints_from_text(text, expected):
    value = parse({"type": int}, query={"x": [text]})
    assert value == expected and type(value) is int


@pytest.mark.parametrize("text", ["5.0", "5.5", "1e3", "five", "", "0x10", "5 5", "nan"])
def test_fractions_and_other_text_are_not_ints(text):
    error = refused({"type": int}, query={"x": [text]})
    assert error.reason == "Expected an integer for 'x'." and error.body == {"keyword": "x", "alias": "x"}


def test_ints_from_json_integral_floats_only():
    value = parse({"type": int}, json_body={"x": 5.0})
    assert value == 5 and type(value) is int
    for value in (5.5, 0.1, True, False, [5], {"a": 5}, "5.5"):
        assert refused({"type": int}, json_body={"x": value}).reason == "Expected an integer for 'x'.", value


@pytest.mark.parametrize("text, expected", [("0.5", 0.5), (" 2 ", 2.0), ("1e3", 1000.0), ("-0.25", -0.25)])
def test_floats_from_text(text, expected):
    value = parse({"type": float}, query={"x": [text]})
    assert value == expected and type(value) is float


@pytest.mark.parametrize("value", ["half", "", [1.5], True, {"a": 1}])
def test_other_values_are_not_numbers(value):
    sources = {"query": {"x": [value]}} if isinstance(value, str) else {"json_body": {"x": value}}
    assert refused({"type": float}, **sources).reason == "Expected a number for 'x'."


def test_strings_from_every_source():
    assert parse({"type": str}, query={"x": ["a b"]}) == "a b"
    assert parse({"type": str}, json_body={"x": 5}) == "5"
    assert parse({"type": str}, json_body={"x": 0.5}) == "0.5"
    assert parse({"type": str}, json_body={"x": True}) == "true"  # JSON's spelling, as a query string has it
    assert parse({"type": str}, json_body={"x": False}) == "false"
    assert parse({"type": str}, path_kwargs={"x": "p"}) == "p"
    for value in ({"a": 1}, ["a"]):
        assert refused({"type": str}, json_body={"x": value}).reason == "Expected a string for 'x'."


def test_an_undeclared_type_is_a_string():
    option = OptionSet({"x": {}}).options["x"]
    assert option.type is str and option.default is None and option.required is False
    assert option.aliases == [] and option.max is None and option.min is None and option.enum is None


# ---------------------------------------------------------------- repeated keys and sources

@pytest.mark.parametrize("kind, values, expected", [
    (int, ["1", "2", "3"], 3), (str, ["a", "b"], "b"), (bool, ["true", "false"], False),
    (bool, ["no", "yes"], True), (float, ["1.5", "2.5"], 2.5)])
def test_a_repeated_scalar_the_last_one_wins(kind, values, expected):
    assert parse({"type": kind}, query={"x": values}) == expected


def test_only_the_last_repeated_value_is_converted():
    assert parse({"type": int}, query={"x": ["bad", "2"]}) == 2
    assert refused({"type": int}, query={"x": ["2", "bad"]}).reason == "Expected an integer for 'x'."


def test_repeated_list_keys_merge_across_the_query_and_the_form():
    assert parse({"type": list}, query={"x": ["a,b", "c"]}) == ["a", "b", "c"]
    assert parse({"type": list}, query={"x": ["a"]}, form={"x": ["b"]}) == ["a", "b"]


def test_the_path_beats_the_query_the_query_beats_the_form_and_the_json_body():
    assert parse({"type": str}, path_kwargs={"x": "path"}, query={"x": ["query"]}) == "path"
    assert parse({"type": str}, query={"x": ["query"]}, form={"x": ["form"]}) == "query"
    assert parse({"type": str}, form={"x": ["form"]}, json_body={"x": "json"}) == "form"
    assert parse({"type": str}, json_body={"x": "json"}) == "json"
    # a list given in the path is not merged with the query's
    assert parse({"type": list}, path_kwargs={"x": "a"}, query={"x": ["b"]}) == ["a"]
    # a path value of None (an optional group that did not match) is no value
    assert parse({"type": str, "default": "d"}, path_kwargs={"x": None}, query={"x": ["q"]}) == "q"
    assert parse({"type": str, "default": "d"}, path_kwargs={"x": None}) == "d"


def test_an_alias_and_its_name_in_one_query_the_first_seen_wins():
    optionset = OptionSet({"size": {"type": int, "alias": ["limit", "rows"]}})
    assert optionset.parse(query={"limit": ["4"]})["size"] == 4
    assert optionset.parse(query={"rows": ["5"]})["size"] == 5
    assert optionset.parse(query={"size": ["1"], "limit": ["2"]})["size"] == 1
    assert OptionSet({"size": {"type": int, "alias": "limit"}}).parse(json_body={"limit": 3})["size"] == 3


def test_a_name_is_never_taken_by_another_options_alias():
    optionset = OptionSet({"a": {"type": str, "alias": "b"}, "b": {"type": str}})
    assert optionset.parse(query={"b": ["x"]}) == {"a": None, "b": "x"}


def test_a_json_body_that_is_not_an_object_gives_no_values():
    for body in (["x"], "x", 3, None):
        assert OptionSet({"x": {"type": str, "default": "d"}}).parse(json_body=body) == {"x": "d"}


@pytest.mark.parametrize("kind", [str, int, float, bool, list])
def test_a_json_null_is_no_value(kind):
    """``{"fields": null}`` is the default, not ``[None]`` (no field) nor ``"None"``."""
    assert parse({"type": kind, "default": "d"}, json_body={"x": None}) == "d"


def test_undeclared_names_are_ignored_and_defaults_fill_in():
    options = OptionSet({"x": {"type": int, "default": 7}, "y": {"type": list}}).parse(
        query={"other": ["1"]}, json_body={"z": 1})
    assert options == {"x": 7, "y": None}


# ---------------------------------------------------------------- bounds, enums, required

@pytest.mark.parametrize("kind", [int, float])
def test_min_and_max_at_the_bound_and_one_past_it(kind):
    spec = {"type": kind, "min": 0, "max": 1000}
    assert parse(spec, query={"x": ["0"]}) == 0 and parse(spec, query={"x": ["1000"]}) == 1000
    high = refused(spec, query={"x": ["1001"]})
    assert high.reason == "Value of 'x' exceeds the maximum of 1000."
    assert high.body == {"keyword": "x", "alias": "x", "max": 1000, "num": 1001}
    low = refused(spec, query={"x": ["-1"]})
    assert low.reason == "Value of 'x' is below the minimum of 0."
    assert low.body == {"keyword": "x", "alias": "x", "min": 0, "num": -1}


def test_fractional_bounds_of_floats():
    spec = {"type": float, "min": 0.5, "max": 1.5}
    assert parse(spec, query={"x": ["0.5"]}) == 0.5 and parse(spec, query={"x": ["1.5"]}) == 1.5
    assert refused(spec, query={"x": ["1.5000001"]}).body["max"] == 1.5
    assert refused(spec, query={"x": ["0.4999999"]}).body["min"] == 0.5


def test_the_bound_error_names_the_alias_used():
    error = refused({"type": int, "max": 10, "alias": "limit"}, query={"limit": ["11"]})
    assert error.reason == "Value of 'limit' exceeds the maximum of 10."
    assert error.body == {"keyword": "x", "alias": "limit", "max": 10, "num": 11}


def test_a_number_past_64_bits_is_answered_as_text():
    error = refused({"type": int, "max": 10}, query={"x": [str(2 ** 63)]})
    assert error.body["num"] == str(2 ** 63)
    assert refused({"type": int, "max": 10}, query={"x": [str(2 ** 63 - 1)]}).body["num"] == 2 ** 63 - 1
    assert refused({"type": int, "min": 0}, query={"x": [str(-2 ** 63)]}).body["num"] == -2 ** 63
    assert refused({"type": int, "min": 0}, query={"x": [str(-2 ** 63 - 1)]}).body["num"] == str(-2 ** 63 - 1)


def test_enum_values_and_list_items_are_checked():
    spec = {"type": str, "enum": ["json", "yaml"]}
    assert parse(spec, query={"x": ["yaml"]}) == "yaml"
    error = refused(spec, query={"x": ["xml"]})
    assert error.reason == "Value of 'x' must be one of: json, yaml."
    assert error.body == {"keyword": "x", "alias": "x", "allowed": ["json", "yaml"]}
    listed = {"type": list, "enum": ("a", "b")}
    assert parse(listed, query={"x": ["a,b,a"]}) == ["a", "b", "a"]
    assert refused(listed, query={"x": ["a,c"]}).body["allowed"] == ["a", "b"]
    assert parse({"type": int, "enum": [1, 2]}, query={"x": ["2"]}) == 2  # checked after conversion
    assert refused({"type": int, "enum": [1, 2]}, query={"x": ["3"]}).reason == "Value of 'x' must be one of: 1, 2."


def test_a_default_outside_the_enum_is_not_checked():
    assert parse({"type": str, "enum": ["a"], "default": "z"}) == "z"


@pytest.mark.parametrize("kind, sources", [(str, {}), (str, {"query": {"x": [""]}}), (str, {"json_body": {"x": None}}),
                                           (str, {"query": {"y": ["1"]}}), (list, {"json_body": {"x": []}}),
                                           (list, {"query": {"x": [","]}}), (list, {"query": {"x": [""]}})])
def test_a_required_option_missing_or_empty(kind, sources):
    error = refused({"type": kind, "required": True, "alias": ["ex"]}, **sources)
    assert error.reason == "Missing required parameter 'x'."
    assert error.body == {"keyword": "x", "alias": ["ex"], "missing": "x"}


def test_a_required_option_given_passes_falsy_values_too():
    assert parse({"type": int, "required": True}, query={"x": ["0"]}) == 0
    assert parse({"type": bool, "required": True}, query={"x": ["false"]}) is False
    assert parse({"type": str, "required": True}, json_body={"x": "0"}) == "0"
    assert parse({"type": str, "required": True, "alias": "ex"}, query={"ex": ["v"]}) == "v"


# ---------------------------------------------------------------- lists

@pytest.mark.parametrize("text, expected", [
    ("a,b,c", ["a", "b", "c"]), ("a|b|c", ["a", "b", "c"]), ("a+b+c", ["a", "b", "c"]),
    ("a b\tc\nd", ["a", "b", "c", "d"]), ("a, b | c + d", ["a", "b", "c", "d"]),
    ('"a b",c', ["a b", "c"]), ('"a,b"|"c+d"', ["a,b", "c+d"]), ('"",a', ["a"]),
    (",,a,,", ["a"]), ("", []), ("   ", []), ('say "x y" z', ["say", "x y", "z"]),
    ('a"b', ["a", "b"]), ("p33(CDK2),NM_1.4", ["p33(CDK2)", "NM_1.4"])])
def test_list_splitting(text, expected):
    assert parse({"type": list}, query={"x": [text]}) == expected
    assert parse({"type": list}, json_body={"x": text}) == expected  # a JSON string splits alike


def test_json_lists_are_taken_as_they_are():
    assert parse({"type": list}, json_body={"x": ["a,b", "c d"]}) == ["a,b", "c d"]
    assert parse({"type": list}, json_body={"x": 5}) == [5]
    assert parse({"type": list}, json_body={"x": True}) == [True]
    assert refused({"type": list}, json_body={"x": {"a": 1}}).reason == "Expected a list for 'x'."


@pytest.mark.parametrize("sources", [{"query": {"x": ["a,b,c"]}}, {"query": {"x": ["a", "b|c"]}},
                                     {"json_body": {"x": ["a", "b", "c"]}}, {"json_body": {"x": "a b c"}}])
def test_list_max_at_n_and_n_plus_one(sources):
    assert len(parse({"type": list, "max": 3}, **sources)) == 3
    error = refused({"type": list, "max": 2}, **sources)
    assert error.reason == "Too many values for 'x': 3 given, the maximum is 2."
    assert error.body == {"keyword": "x", "alias": "x", "max": 2, "num": 3}


# ---------------------------------------------------------------- attribute reads

def test_register_adds_reads_for_new_identifiers_only():
    class Mine(Options):
        __slots__ = ()
    Mine.register("fresh_flag", "not an identifier", 5, "get")
    assert isinstance(vars(Mine).get("fresh_flag"), property)
    assert "not an identifier" not in vars(Mine) and "get" not in vars(Mine)
    mine = Mine(fresh_flag=3)
    assert mine.fresh_flag == 3 and mine.get("fresh_flag") == 3
    assert Mine().fresh_flag is None


def test_keywords_and_dunders_are_no_attributes_but_stay_options():
    optionset = OptionSet({"from": {"type": int, "default": 0}, "__class__": {"type": str}, "a-b": {"type": str}})
    namespace = vars(optionset.options_class)
    assert "from" not in namespace and "__class__" not in namespace and "a-b" not in namespace
    options = optionset.parse(query={"from": ["3"], "a-b": ["v"]})
    assert options["from"] == 3 and options["a-b"] == "v" and type(options).__class__ is type
    assert optionset.options_class.__name__ == "Options" and issubclass(optionset.options_class, Options)


def test_option_error_keeps_its_reason_and_body():
    error = OptionError("Bad.", keyword="x", num=3)
    assert str(error) == "Bad." and error.reason == "Bad." and error.body == {"keyword": "x", "num": 3}


# ---------------------------------------------------------------- what mutation testing asked for

def test_type_errors_name_the_alias_used():
    for spec, value, reason in (({"type": str}, {"a": 1}, "Expected a string for 'ex'."),
                                ({"type": int}, [1], "Expected an integer for 'ex'."),
                                ({"type": list}, {"a": 1}, "Expected a list for 'ex'.")):
        error = refused({**spec, "alias": "ex"}, json_body={"ex": value})
        assert error.reason == reason and error.body == {"keyword": "x", "alias": "ex"}


def test_unknown_names_before_known_ones_in_one_source():
    optionset = OptionSet({"x": {"type": int}, "y": {"type": str}})
    assert optionset.parse(query={"other": ["1"], "x": ["2"], "more": ["3"], "y": ["b"]}) == {"x": 2, "y": "b"}
    assert optionset.parse(form={"other": ["1"], "x": ["2"]})["x"] == 2
    assert optionset.parse(json_body={"other": 1, "x": 2})["x"] == 2


def test_parsed_options_have_no_instance_dict():
    """Options are made per request: slots all the way down."""
    options = OptionSet({"x": {"type": int, "default": 1}}).parse()
    assert all(vars(cls).get("__slots__") == () for cls in type(options).__mro__[:-2])


def test_declaration_errors_read_whole():
    from biothings.web.settings import SettingsError
    with pytest.raises(SettingsError) as error:
        OptionSet({"x": {"zzzz": 1}})
    assert str(error.value) == ("options: option 'x' has an unknown key 'zzzz'; known: type, default, alias, max, "
                                "min, enum, required, description")
    with pytest.raises(SettingsError) as error:
        OptionSet({"x": {"type": dict}}, where="QUERY_KWARGS['GET']")
    assert str(error.value) == ("QUERY_KWARGS['GET']: option 'x' has type <class 'dict'>; one of str, int, float, "
                                "bool, list")
    with pytest.raises(SettingsError) as error:
        OptionSet({"x": "int"})
    assert str(error.value) == "options: the declaration of option 'x' must be a dict, not str"


def test_an_option_alone_names_options_in_its_errors_and_keeps_its_description():
    from biothings.web.options import Option
    from biothings.web.settings import SettingsError
    with pytest.raises(SettingsError, match=r"^options: option 'x' has an unknown key 'zzzz'"):
        Option("x", {"zzzz": 1})
    assert Option("x", {"description": "Species, by name or taxid."}).description == "Species, by name or taxid."
    assert Option("x", {}).description == ""
