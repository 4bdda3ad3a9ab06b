"""The documentation site builds without a warning; its configuration reference is complete."""

import importlib.util
import os
import subprocess
import sys

import pytest

from biothings.web.settings import default
from tests import data

ROOT = data.ROOT


def hooks():
    spec = importlib.util.spec_from_file_location("mkdocs_hooks", os.path.join(ROOT, "scripts", "mkdocs_hooks.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def public_settings():
    return list(default.settings())


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    site = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for page in ("tutorial", "configuration", "contract", "deployment", "observability", "embedded",
                 "benchmarks", "limits"):
        assert (site / page / "index.html").exists(), page
    reference = (site / "configuration" / "index.html").read_text()
    for name in public_settings():
        assert f"<code>{name}</code>" in reference, name


def test_configuration_reference_lists_every_setting_with_its_comment():
    module = hooks()
    documented = {name: (default_source, description)
                  for _, name, default_source, description in module.read_settings()}
    assert set(documented) == set(public_settings())
    for name, (default_source, description) in documented.items():
        assert description, f"{name} has no comment in settings/default.py"
        assert default_source
    assert documented["CACHE_MAX_AGE"][0] == "604800"
    assert documented["MAX_BODY_SIZE"][0] == "10 * 1024 * 1024"
    page = module.settings_reference()
    for name in public_settings():
        assert f"| `{name}` |" in page


def test_configuration_page_is_current():
    """docs/configuration.md is committed (it reads in the repository) and made from default.py."""
    with open(os.path.join(ROOT, "docs", "configuration.md"), encoding="utf-8") as handle:
        assert handle.read() == hooks().settings_reference(), "run python scripts/mkdocs_hooks.py"


def test_contract_page_is_the_project_contract():
    with open(os.path.join(ROOT, "docs", "contract.md"), encoding="utf-8") as handle:
        text = handle.read()
    assert text.startswith("# The HTTP contract")
    assert "## Better than the reference" in text
