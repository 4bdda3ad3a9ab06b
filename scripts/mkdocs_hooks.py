"""The configuration reference, ``docs/configuration.md``, made from ``settings/default.py``.

Every setting, its default (as written in the source) and the comment block right
above it. The page is committed, so it reads on GitHub too: after editing
``default.py``, run ``python scripts/mkdocs_hooks.py`` (``tests/tools/test_docs.py`` fails
while the page is stale). It is also the MkDocs hook (``hooks:`` in mkdocs.yml) that
refuses to build a site from a stale page.
"""

import ast
import io
import os
import re
import tokenize

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULTS = os.path.join(ROOT, "biothings", "web", "settings", "default.py")
_INLINE_MAX = 60
_ACRONYMS = {"api": "API", "http": "HTTP"}


def read_settings(path=DEFAULTS):
    """``[(section, name, default source, description)]`` in file order."""
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    comments = {}  # line number -> comment text
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and token.line.lstrip().startswith("#"):
            comments[token.start[0]] = token.string.lstrip("#").strip()
    settings, section = [], "General"
    tree = ast.parse(source)
    section_lines = sorted((line, text) for line, text in comments.items() if text.startswith("---"))
    for node in tree.body:
        if not isinstance(node, (ast.Assign, ast.AnnAssign)):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = [target.id for target in targets if isinstance(target, ast.Name)]
        names = [name for name in names if name.isupper() and not name.startswith("_")]
        if not names and not any(isinstance(t, ast.Subscript) for t in targets):
            continue
        for line, text in section_lines:
            if line < node.lineno:
                words = text.strip("- ").split() or [section]
                section = " ".join(_ACRONYMS.get(word, word) for word in words)
                section = section[0].upper() + section[1:]
        block, line = [], node.lineno - 1
        while line in comments and not comments[line].startswith("---"):
            block.insert(0, comments[line])
            line -= 1
        default = ast.get_source_segment(source, node.value)
        if not names:  # e.g. STATUS_KWARGS["HEAD"] = ...: part of a setting above
            continue
        for name in names:
            settings.append((section, name, default, " ".join(block)))
    return settings


def _escape(text):
    """A comment as a table cell: code spans kept, markdown emphasis and links not."""
    parts = re.split(r"(`+[^`]*`+)", text)
    out = []
    for index, part in enumerate(parts):
        if index % 2 == 0:
            part = re.sub(r"([\\*_\[\]])", r"\\\1", part).replace("<", "&lt;").replace(">", "&gt;")
        out.append(part.replace("|", "\\|"))
    return "".join(out)


def settings_reference(path=DEFAULTS):
    """The markdown page of the configuration reference."""
    settings = read_settings(path)
    out = [
        "# Configuration reference",
        "",
        "<!-- generated from biothings/web/settings/default.py by scripts/mkdocs_hooks.py: edit that file,",
        "     then run python scripts/mkdocs_hooks.py -->",
        "",
        "A config module (`--conf=config`) overrides any of these by defining the same name; an",
        "environment variable of the same name overrides both, parsed to the type of the default",
        "(`ES_HOST=http://es:9200`, `ALLOW_RANDOM_QUERY=1`, `ES_INDICES='{\"gene\": \"genes\"}'`).",
        "",
    ]
    long_values = []
    section = None
    for setting_section, name, default, description in settings:
        if setting_section != section:
            section = setting_section
            out += ["", f"## {section}", "", "| Setting | Default | Description |", "|---|---|---|"]
        one_line = " ".join(default.split())
        if len(one_line) <= _INLINE_MAX and "|" not in one_line and "`" not in one_line:
            shown = f"`{one_line}`"
        else:
            shown = f"see [below](#{name.lower()})"
            long_values.append((name, default))
        out.append(f"| `{name}` | {shown} | {_escape(description) or '&nbsp;'} |")
    if long_values:
        out += ["", "## Long defaults", ""]
        for name, default in long_values:
            out += [f"### {name}", "", "```python", f"{name} = {default}", "```", ""]
    return "\n".join(out) + "\n"


PAGE = os.path.join(ROOT, "docs", "configuration.md")


def on_pre_build(config):
    with open(PAGE, encoding="utf-8") as handle:
        if handle.read() != settings_reference():
            raise SystemExit("docs/configuration.md is stale: run python scripts/mkdocs_hooks.py")


if __name__ == "__main__":
    with open(PAGE, "w", encoding="utf-8") as handle:
        handle.write(settings_reference())
    print(f"wrote {PAGE}")
