"""schema-check catches each kind of break in a published event version and lets compatible changes
through: each test changes a copy of the generated document in memory, as an edit of events.py would."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.__main__ import main
from app.ops import asyncapi
from app.ops.schema_check import InvalidDocument, check, run

ROOT = Path(__file__).resolve().parents[2]
Doc = dict[str, Any]


@pytest.fixture
def published() -> Doc:
    return asyncapi.document()


@pytest.fixture
def current(published: Doc) -> Doc:
    return copy.deepcopy(published)


def schema(doc: Doc, name: str) -> dict[str, Any]:
    found: dict[str, Any] = doc["components"]["schemas"][name]
    return found


def breaks(published: Doc, current: Doc) -> list[str]:
    return list(check(published, current).breaks)


def add_version(doc: Doc, model: str, event_type: str, data: dict[str, Any]) -> None:
    """A new event type as the generator writes one: its schema, its message and its channel."""
    doc["components"]["schemas"][model] = data
    message = copy.deepcopy(next(m for m in doc["components"]["messages"].values()))
    message["name"], message["title"] = model, event_type
    message["payload"]["allOf"][1]["properties"]["data"] = {"$ref": f"#/components/schemas/{model}"}
    doc["components"]["messages"][model] = message
    doc["channels"][event_type] = {
        "address": event_type,
        "messages": {model: {"$ref": f"#/components/messages/{model}"}},
    }


def test_the_generated_document_is_compatible_with_itself(published: Doc, current: Doc) -> None:
    result = check(published, current)
    assert result.breaks == () and result.new == ()
    assert result.checked == len(published["channels"]) >= 6


def test_a_removed_field_is_a_break(published: Doc, current: Doc) -> None:
    paid = schema(current, "PaymentSucceeded")
    del paid["properties"]["balance"]
    paid["required"].remove("balance")
    assert breaks(published, current) == ["billing.payment_succeeded.v1: field 'balance' removed"]


def test_a_renamed_field_is_a_removal_and_a_new_required_field(published: Doc, current: Doc) -> None:
    paid = schema(current, "PaymentSucceeded")
    paid["properties"]["funds"] = paid["properties"].pop("balance")
    paid["required"] = [("funds" if f == "balance" else f) for f in paid["required"]]
    assert breaks(published, current) == [
        "billing.payment_succeeded.v1: field 'balance' removed",
        "billing.payment_succeeded.v1: new required field 'funds'",
    ]


def test_a_changed_type_is_a_break(published: Doc, current: Doc) -> None:
    schema(current, "PaymentSucceeded")["properties"]["amount"]["type"] = "string"
    assert breaks(published, current) == [
        "billing.payment_succeeded.v1: field 'amount' type integer -> string"
    ]


def test_a_changed_type_under_nullable_any_of_is_a_break(published: Doc, current: Doc) -> None:
    schema(current, "PaymentFailed")["properties"]["balance"]["anyOf"][0] = {"type": "string"}
    assert breaks(published, current) == [
        "billing.payment_failed.v1: field 'balance' type integer | null -> string | null"
    ]


def test_a_field_made_nullable_is_a_break(published: Doc, current: Doc) -> None:
    amount = schema(current, "PaymentSucceeded")["properties"]["amount"]
    amount["anyOf"] = [{"type": amount.pop("type")}, {"type": "null"}]
    assert breaks(published, current) == [
        "billing.payment_succeeded.v1: field 'amount' type integer -> integer | null"
    ]


def test_an_optional_field_made_required_is_a_break(published: Doc, current: Doc) -> None:
    schema(current, "NotificationRequested")["required"].append("order_id")
    assert breaks(published, current) == [
        "billing.notification_requested.v1: field 'order_id' became required"
    ]


def test_a_required_field_made_optional_is_a_break(published: Doc, current: Doc) -> None:
    schema(current, "PaymentRequested")["required"].remove("amount")
    assert breaks(published, current) == ["orders.payment_requested.v1: field 'amount' became optional"]


def test_a_narrowed_enum_is_a_break(published: Doc, current: Doc) -> None:
    schema(current, "PaymentFailed")["properties"]["reason"]["enum"].remove("account_not_found")
    assert breaks(published, current) == [
        "billing.payment_failed.v1: field 'reason' enum lost 'account_not_found'"
    ]


def test_a_free_value_restricted_to_an_enum_is_a_break(published: Doc, current: Doc) -> None:
    schema(current, "AccountCreated")["properties"]["login"]["enum"] = ["alice"]
    assert breaks(published, current) == [
        "billing.account_created.v1: field 'login' restricted to enum ['alice']"
    ]


def test_a_new_required_field_is_a_break(published: Doc, current: Doc) -> None:
    registered = schema(current, "PersonRegistered")
    registered["properties"]["country"] = {"title": "Country", "type": "string"}
    registered["required"].append("country")
    assert breaks(published, current) == ["person.registered.v1: new required field 'country'"]


def test_a_removed_published_event_type_is_a_break(published: Doc, current: Doc) -> None:
    del current["channels"]["billing.account_created.v1"]
    assert breaks(published, current) == [
        "billing.account_created.v1: published event type removed (keep it beside its successor)"
    ]


def test_a_new_optional_field_passes(published: Doc, current: Doc) -> None:
    registered = schema(current, "PersonRegistered")
    registered["properties"]["country"] = {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
    assert breaks(published, current) == []


def test_a_breaking_change_as_v2_beside_an_unchanged_v1_passes(published: Doc, current: Doc) -> None:
    v2 = copy.deepcopy(schema(current, "PaymentSucceeded"))
    v2["properties"]["amount"]["type"] = "string"
    del v2["properties"]["balance"]
    v2["required"].remove("balance")
    add_version(current, "PaymentSucceededV2", "billing.payment_succeeded.v2", v2)
    result = check(published, current)
    assert result.breaks == ()
    assert result.new == ("billing.payment_succeeded.v2",)


def test_the_same_change_in_place_of_v1_is_a_break(published: Doc, current: Doc) -> None:
    v2 = copy.deepcopy(schema(current, "PaymentSucceeded"))
    v2["properties"]["amount"]["type"] = "string"
    add_version(current, "PaymentSucceededV2", "billing.payment_succeeded.v2", v2)
    del current["channels"]["billing.payment_succeeded.v1"]
    assert breaks(published, current) == [
        "billing.payment_succeeded.v1: published event type removed (keep it beside its successor)"
    ]


def test_a_widened_enum_passes(published: Doc, current: Doc) -> None:
    schema(current, "NotificationRequested")["properties"]["kind"]["enum"].append("order_shipped")
    assert breaks(published, current) == []


def test_descriptions_titles_and_examples_may_change(published: Doc, current: Doc) -> None:
    failed = schema(current, "PaymentFailed")
    failed["description"] = "Billing could not take the money."
    failed["properties"]["reason"]["title"] = "Why"
    failed["properties"]["reason"]["description"] = "The reason, for the customer's notice."
    failed["examples"] = []
    current["components"]["messages"]["PaymentFailed"]["summary"] = "another summary"
    assert breaks(published, current) == []


def test_nested_objects_behind_refs_are_compared_by_dotted_path(published: Doc) -> None:
    with_address = copy.deepcopy(published)
    with_address["components"]["schemas"]["Address"] = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
        "required": ["city", "zip"],
    }
    registered = schema(with_address, "PersonRegistered")
    registered["properties"]["address"] = {"$ref": "#/components/schemas/Address"}
    registered["properties"]["tags"] = {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}}
    current = copy.deepcopy(with_address)
    address = schema(current, "Address")
    del address["properties"]["zip"]
    address["properties"]["city"]["format"] = "uri"
    schema(current, "PersonRegistered")["properties"]["tags"]["items"]["enum"] = ["a"]
    assert breaks(with_address, current) == [
        "person.registered.v1: field 'address.city' type string -> string (uri)",
        "person.registered.v1: field 'address.zip' removed",
        "person.registered.v1: field 'tags[]' enum lost 'b'",
    ]


def test_a_document_whose_refs_do_not_resolve_is_invalid(published: Doc, current: Doc) -> None:
    del current["components"]["schemas"]["PaymentFailed"]
    with pytest.raises(InvalidDocument, match=r"#/components/schemas/PaymentFailed does not resolve"):
        check(published, current)


def test_the_committed_document_is_compatible_with_the_code(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # the default is docs/asyncapi.yaml from where make runs it
    with pytest.raises(SystemExit) as exited:
        main(["schema-check"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out == f"{len(asyncapi.flows())} event types checked against docs/asyncapi.yaml: compatible\n"


def test_the_cli_exits_1_naming_the_event_and_the_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # the published side carries a value the code no longer sends: the code narrowed the enum
    older = asyncapi.document()
    schema(older, "PaymentFailed")["properties"]["reason"]["enum"].append("account_frozen")
    path = tmp_path / "asyncapi.yaml"
    path.write_text(yaml.safe_dump(older, sort_keys=False), encoding="utf-8")
    with pytest.raises(SystemExit) as exited:
        main(["schema-check", "--against", str(path)])
    assert exited.value.code == 1
    assert capsys.readouterr().out == "billing.payment_failed.v1: field 'reason' enum lost 'account_frozen'\n"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (None, "cannot read it"),
        ("channels: [unclosed", "cannot read it"),
        ("- a list", "not an AsyncAPI document"),
        ("asyncapi: 3.0.0\n", "no channels"),
    ],
)
def test_an_unreadable_or_invalid_document_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str | None, says: str
) -> None:
    path = tmp_path / "asyncapi.yaml"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(SystemExit) as exited:
        main(["schema-check", "--against", str(path)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert says in err and str(path) in err


def test_run_compares_with_a_given_current_document(capsys: pytest.CaptureFixture[str]) -> None:
    current = asyncapi.document()
    del current["channels"]["orders.payment_requested.v1"]
    assert run(ROOT / "docs" / "asyncapi.yaml", current) == 1
    assert capsys.readouterr().out.startswith("orders.payment_requested.v1: published event type removed")


def test_a_break_cannot_hide_behind_a_regenerated_document(
    published: Doc, current: Doc, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the break, and the document regenerated with it (the stale-document test then passes)
    del schema(current, "PaymentSucceeded")["properties"]["balance"]
    schema(current, "PaymentSucceeded")["required"].remove("balance")
    regenerated = tmp_path / "asyncapi.yaml"
    regenerated.write_text(yaml.safe_dump(current), encoding="utf-8")
    assert run(regenerated, current) == 0  # against the regenerated document alone: hidden
    capsys.readouterr()
    # two commits that published the document as it was (the same document twice)
    earlier = [("abc1234", published), ("def5678", copy.deepcopy(published))]
    assert run(regenerated, current, versions=earlier) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["billing.payment_succeeded.v1: field 'balance' removed (published in abc1234)"]
    # and the code as it was passes against every version
    assert run(regenerated, published, versions=earlier) == 1  # 'balance' is new there: required
    capsys.readouterr()
    assert run(ROOT / "docs" / "asyncapi.yaml", published, versions=earlier) == 0


def test_a_version_retired_from_the_committed_document_is_let_go_by_history(
    published: Doc, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    retired = copy.deepcopy(published)
    del retired["channels"]["billing.account_created.v1"]
    committed = tmp_path / "asyncapi.yaml"
    committed.write_text(yaml.safe_dump(retired), encoding="utf-8")
    assert run(committed, retired, versions=[("abc1234", published)]) == 0
    assert "and 1 earlier version(s) of it in git: compatible" in capsys.readouterr().out
