"""The README's conformance table is the one the registry generates (`creative-sync conformance`)."""
from __future__ import annotations

from pathlib import Path

from gateway.app import operations_registry
from gateway.conformance import conformance_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_table_is_generated_from_the_registry():
    text = README.read_text()
    committed = text.split("<!-- conformance:begin -->\n", 1)[1].split("<!-- conformance:end -->", 1)[0]
    generated = conformance_table(operations_registry())
    assert committed == generated, "README conformance table is stale: run `creative-sync conformance`"
    assert {op.name for op in operations_registry()} == {line.split("`")[1] for line in generated.splitlines()[2:]}
