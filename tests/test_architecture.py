"""docs/architecture.md's layer table, the import contract and the folders say the same."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "plugdock"


def contract_layers() -> list[set[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["containers"] == ["plugdock"])
    assert "exhaustive_ignores" not in layers, "the layers contract exempts nothing"
    return [set(re.split(r"\s*[|:]\s*", layer)) for layer in layers["layers"]]


def documented_layers() -> list[set[str]]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    table = text.split("## The layers", 1)[1].split("\n\n| layer |", 1)[1].split("\n\n", 1)[0]
    rows = [line.split(" | ")[1] for line in table.splitlines()[2:]]
    return [{name.strip("/") for name in re.findall(r"`([a-z_]+/?)`", row)} for row in rows]


def top_level_names() -> set[str]:
    names = {p.stem for p in SRC.glob("*.py") if p.stem != "__init__"}
    names |= {p.parent.name for p in SRC.glob("*/__init__.py")}
    return names


def test_the_table_lists_the_contract_layers_in_order() -> None:
    assert documented_layers() == contract_layers()


def test_every_top_level_module_and_package_is_in_a_layer() -> None:
    placed = set().union(*contract_layers())
    assert top_level_names() == placed
