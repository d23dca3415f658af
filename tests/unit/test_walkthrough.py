"""The walk-through replay's parser and comparer (tests/support/walkthrough.py), with no server: it must
find the README's requests, and it must fail when an answer drifts from the page, as the 403 example's
``detail`` once did."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.walkthrough import (
    Example,
    Ids,
    Replay,
    compare,
    compare_json,
    examples_of,
    parse_curl,
    sessions,
    words,
)

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
# what the README's 403 example printed before the message changed
DRIFTED_DETAIL = "the token is not 'bob''s"


def readme_examples() -> list[Example]:
    default, *others = sessions(README, root=ROOT)
    assert not others, "the README's walk-through runs on one plain server"
    return default.examples


def the_403_example() -> Example:
    found = [e for e in readme_examples() if "login=bob" in e.command]
    assert len(found) == 1, found
    return found[0]


def answer(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    content = json.dumps(body).encode()
    return httpx.Response(status, headers=headers or {"content-type": "application/json"}, content=content)


TOKEN = {"TOKEN": "a-token"}


def problems_for(example: Example, response: httpx.Response) -> list[str]:
    request = parse_curl(words(example.command, TOKEN, example.where))
    return compare(example, request, response, Ids())


def test_the_readme_walks_the_seed_with_a_token() -> None:
    requests = []
    for e in readme_examples():
        if e.command.startswith("curl "):
            r = parse_curl(words(e.command, TOKEN, e.where))
            requests.append((r.method, r.url.split("?")[0].removeprefix("http://127.0.0.1:8000")))
    seed = [
        ("POST", "/person/register"),
        ("POST", "/person/login"),
        ("GET", "/account/"),
        ("GET", "/notice/notices/"),
        ("PUT", "/account/operation"),
        ("POST", "/order/createOrder"),
        ("GET", "/account/"),
        ("GET", "/notice/notices/"),
        ("POST", "/order/createOrder"),
        ("GET", "/notice/notices/"),
    ]
    it = iter(requests)
    assert all(step in it for step in seed), requests  # the seed's steps, in its order
    commands = [e.command for e in readme_examples()]
    assert any(c.startswith("TOKEN=$(curl") for c in commands)
    assert any(c.startswith("until curl -sf") for c in commands)
    assert sum('"Authorization: Bearer $TOKEN"' in c for c in commands) >= 8


def test_the_403_example_as_printed_passes() -> None:
    example = the_403_example()
    body = json.loads(example.shown[-1])
    response = answer(403, body, {"content-type": "application/problem+json"})
    assert problems_for(example, response) == []


def test_a_drifted_detail_in_the_403_example_is_caught() -> None:
    example = the_403_example()
    body = {**json.loads(example.shown[-1]), "detail": DRIFTED_DETAIL}
    problems = problems_for(example, answer(403, body, {"content-type": "application/problem+json"}))
    assert len(problems) == 1 and "$.detail" in problems[0] and DRIFTED_DETAIL in problems[0], problems


def test_a_drifted_status_line_or_header_is_caught() -> None:
    example = the_403_example()
    body = json.loads(example.shown[-1])
    problems = problems_for(example, answer(401, body, {"content-type": "application/problem+json"}))
    assert any("HTTP/1.1 403 Forbidden" in p and "401 Unauthorized" in p for p in problems), problems
    problems = problems_for(example, answer(403, body, {"content-type": "application/json"}))
    assert any("content-type" in p for p in problems), problems


SHOWN_ORDER = {
    "id": "01a2335bee3b73dc975c4cf489b4a8dc",
    "login": "alice",
    "price": 300.0,
    "status": "paid",
    "reason": None,
    "createdAt": "2026-12-01T20:46:32.507383Z",
    "text": "Order 01a2335b… paid",
    "token": "eyJhbGciOiJIUzI1NiIs…",
}
REAL_ORDER = {
    **SHOWN_ORDER,
    "id": "0199aaaabbbb7ccc8ddd0eee1fff2aaa",
    "createdAt": "2027-01-02T03:04:05.000006Z",
    "text": "Order 0199aaaa… paid",
    "token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhIn0.sig_-",
}


def test_ids_timestamps_and_cut_tokens_are_compared_by_shape_and_the_rest_exactly() -> None:
    assert compare_json(SHOWN_ORDER, REAL_ORDER, Ids(), "$") == []


@pytest.mark.parametrize(
    ("key", "value", "said"),
    [
        ("price", "300.00", "shown 300.0"),  # a number became a string
        ("price", 300, "shown 300.0"),  # a float became an int
        ("price", 299.0, "shown 300.0"),
        ("reason", "none", "shown None"),
        ("status", "rejected", "'paid'"),
        ("id", "not-an-id", "'01a2335bee3b73dc975c4cf489b4a8dc'"),
        ("createdAt", "yesterday", "2026-12-01"),
        ("text", "Order 0199aaaa… rejected", "paid"),
    ],
)
def test_a_changed_value_is_caught(key: str, value: Any, said: str) -> None:
    problems = compare_json(SHOWN_ORDER, {**REAL_ORDER, key: value}, Ids(), "$")
    assert len(problems) == 1 and f"$.{key}" in problems[0] and said in problems[0], problems


def test_a_key_added_or_gone_is_caught() -> None:
    gone = {k: v for k, v in REAL_ORDER.items() if k != "reason"}
    assert compare_json(SHOWN_ORDER, gone, Ids(), "$") == ["$: key 'reason' shown, not in the answer"]
    added = {**REAL_ORDER, "isPaid": True}
    assert compare_json(SHOWN_ORDER, added, Ids(), "$") == ["$: key 'isPaid' in the answer, not shown"]
    shorter = compare_json([SHOWN_ORDER, SHOWN_ORDER], [REAL_ORDER], Ids(), "$")
    assert shorter == ["$: 2 items shown, 1 in the answer"]


def test_a_printed_id_stands_for_one_real_id_throughout() -> None:
    ids = Ids()
    assert compare_json(SHOWN_ORDER, REAL_ORDER, ids, "$") == []
    # the retry printed the same order: a different real order is caught
    other = {**REAL_ORDER, "id": "0199aaaabbbb7ccc8ddd0eee1fff2bbb"}
    assert "is 0199aaaabbbb7ccc8ddd0eee1fff2aaa earlier" in compare_json(SHOWN_ORDER, other, ids, "$")[0]
    # two orders printed, one real order answered both times: caught as well
    second = {**SHOWN_ORDER, "id": "01a2335bee557643925f37f52bf8af2b"}
    assert "are different on the page" in compare_json(second, REAL_ORDER, ids, "$")[0]
    # and a later request that names the printed id sends the real one
    assert ids.substitute("/order/orders/01a2335bee3b73dc975c4cf489b4a8dc") == (
        "/order/orders/0199aaaabbbb7ccc8ddd0eee1fff2aaa"
    )


BLOCK = """$ curl -s -i -X PUT http://127.0.0.1:8000/account/operation -H 'Content-Type: application/json' \\
    -H "Authorization: Bearer $TOKEN" -d '{"sum": 1}'
HTTP/1.1 200 OK
content-type: application/json

{"balance":1.0}
$ TOKEN=$(curl -s http://127.0.0.1:8000/person/login -d '{}' | python3 -c 'print(1)')
$ make run
"""


def test_a_block_is_split_into_commands_with_their_continuations_and_output() -> None:
    first, second, third = examples_of(BLOCK, "page.md", 10)
    assert (first.where, second.where, third.where) == ("page.md:10", "page.md:16", "page.md:17")
    assert first.command.endswith("""-H "Authorization: Bearer $TOKEN" -d '{"sum": 1}'""")
    assert first.shown == ("HTTP/1.1 200 OK", "content-type: application/json", "", '{"balance":1.0}')
    assert second.command.startswith("TOKEN=$(curl") and second.shown == ()
    request = parse_curl(words(first.command, TOKEN, first.where))
    assert (request.method, request.url, request.body) == (
        "PUT",
        "http://127.0.0.1:8000/account/operation",
        '{"sum": 1}',
    )
    assert request.headers == {"Content-Type": "application/json", "Authorization": "Bearer a-token"}
    assert request.head and not request.fail


def test_a_variable_nothing_set_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"\$TOKEN is not set"):
        words('curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8000/', {}, "page.md:1")


async def test_a_command_the_replay_does_not_know_fails_it() -> None:
    *_, unknown = examples_of(BLOCK, "page.md", 10)
    async with httpx.AsyncClient(base_url="http://127.0.0.1:9") as client:
        assert await Replay(client).run(unknown) == [
            "page.md:17: a command the replay does not know: 'make run'"
        ]


def test_a_replay_directive_gives_its_block_a_system_of_its_own(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```console\n$ curl -s http://127.0.0.1:8000/a\n{}\n```\n\n"
        "<!-- replay: MODULES=person,orders ORDER_REPLY_TIMEOUT=1 -->\n"
        "```console\n$ curl -s http://127.0.0.1:8000/b\n{}\n```\n"
        "```console\n$ curl -s http://127.0.0.1:8000/c\n{}\n```\n"
    )
    default, own = sessions(page)
    assert default.settings == {} and [e.where for e in default.examples] == ["page.md:2", "page.md:12"]
    assert own.settings == {"MODULES": "person,orders", "ORDER_REPLY_TIMEOUT": "1"}
    assert [e.command for e in own.examples] == ["curl -s http://127.0.0.1:8000/b"]
