"""docs/data.md documents exactly the contract that models/data_contract.py defines."""

from offerdata.contract_doc import DOC, embedded, render


def test_docs_match_the_schema() -> None:
    assert embedded(DOC.read_text()) == render(), (
        "docs/data.md is out of date: run python -m offerdata.contract_doc --write")
