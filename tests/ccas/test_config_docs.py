"""`.env.example` and the README's settings table are generated from the settings models, and every setting has a flag and a
variable of its own."""

from __future__ import annotations

import argparse
from collections import Counter

import pytest

from ccas import config_docs
from core.config import add_flags, describe


def test_env_example_is_what_the_models_generate() -> None:
    assert config_docs.ENV_EXAMPLE.read_text() == config_docs.render_env_example(), (
        ".env.example is stale: run `ccas config env-example --write`")


def test_readme_settings_table_is_what_the_models_generate() -> None:
    block = config_docs.readme_block(config_docs.README.read_text())
    assert block == config_docs.render_readme_table(), (
        "the README settings table is stale: run `ccas config readme-table --write`")


@pytest.mark.parametrize("component", list(config_docs.COMPONENTS))
def test_every_setting_has_its_own_flag_variable_and_meaning(component: str) -> None:
    model = config_docs.COMPONENTS[component]
    style = config_docs.FLAG_STYLES.get(component, "-")
    docs = describe(model, style)
    variables = Counter(doc.variable for doc in docs)
    flags = Counter(doc.flag for doc in docs)
    assert [v for v, n in variables.items() if n > 1] == [], f"{component}: two settings share a variable"
    assert [f for f, n in flags.items() if n > 1] == [], f"{component}: two settings share a flag"
    assert all(doc.variable.startswith("CCAS_") for doc in docs)
    assert all(doc.flag.startswith("--") for doc in docs)
    assert [doc.variable for doc in docs if not doc.help] == [], f"{component}: settings without a description"
    add_flags(argparse.ArgumentParser(), model, style)  # argparse itself refuses a flag defined twice
    assert set(config_docs.ENVIRONMENT_ONLY.get(component, ())) <= set(model.model_fields), "environment-only: unknown field"


def test_a_variable_several_components_read_has_one_default() -> None:
    # .env.example documents a shared variable once, so every component must agree on what leaving it unset means.
    defaults: dict[str, set[str]] = {}
    for component, model in config_docs.COMPONENTS.items():
        for doc in describe(model, config_docs.FLAG_STYLES.get(component, "-")):
            defaults.setdefault(doc.variable, set()).add(doc.default)
    assert {variable: d for variable, d in defaults.items() if len(d) > 1} == {}


def test_readme_block_is_replaced_in_place_and_nothing_else() -> None:
    begin, end = config_docs.BEGIN, config_docs.END
    text = f"# Title\n\n## Configuration\nOne sentence.\n\n{begin}\nold table\n{end}\n\n## Next\n"
    updated = config_docs.with_readme_block(text, "| new |\n")
    assert updated == f"# Title\n\n## Configuration\nOne sentence.\n\n{begin}\n| new |\n{end}\n\n## Next\n"
    with pytest.raises(ValueError, match="settings:begin"):
        config_docs.with_readme_block("# no markers\n", "| new |\n")
