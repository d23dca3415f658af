"""The request rules the OpenAPI document states (and the fuzzer holds it to) are the app's own, on the
fast lane and on FastAPI alike: one value per query parameter, an Idempotency-Key of printable ASCII,
whole-number quantities, every operation alias, and the one order shape the document leaves out."""

from __future__ import annotations

import httpx
import pytest

from tests.support.auth import open_account


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/account/", [("login", "$"), ("login", "$")]),  # the fast lane's route
        ("/notice/notices/", [("login", "$"), ("limit", "5"), ("limit", "6")]),  # the fast lane's
        ("/order/orders", [("login", "$"), ("login", "$")]),
        ("/person/persons/$", [("x", "1")]),  # not a parameter of the route: nothing to refuse
    ],
)
async def test_a_query_parameter_given_twice_is_400(
    client: httpx.AsyncClient, path: str, params: list[tuple[str, str]]
) -> None:
    login, auth = await open_account(client)
    path = path.replace("$", login)
    query = httpx.QueryParams([(k, v.replace("$", login)) for k, v in params])
    r = await client.get(path, params=query, headers=auth)
    if path.startswith("/person"):
        twice = httpx.QueryParams([*query.multi_items(), *query.multi_items()])
        assert (await client.get(path, params=twice, headers=auth)).status_code == 200
        return
    assert r.status_code == 400, r.text
    problem = r.json()
    assert problem["type"] == "urn:eventcollab:problem:invalid-parameter"
    assert problem["errors"][0]["field"].startswith("query.") and "more than once" in problem["detail"]


@pytest.mark.parametrize("route", ["createOrder", "operation"])
async def test_an_idempotency_key_that_is_not_printable_ascii_is_400_and_changes_nothing(
    client: httpx.AsyncClient, route: str
) -> None:
    login, auth = await open_account(client, deposit=10)
    for key in (b"caf\xe9", b"tab\there", b"x" * 256):
        headers = [(k.encode(), v.encode()) for k, v in auth.items()] + [(b"Idempotency-Key", key)]
        if route == "createOrder":  # the fast lane answers it
            r = await client.post("/order/createOrder", json={"login": login, "price": 1}, headers=headers)
        else:
            body = {"login": login, "operation": "deposit", "sum": 1}
            r = await client.put("/account/operation", json=body, headers=headers)
        assert r.status_code == 400, (key, r.text)
        assert "printable ASCII" in r.json()["detail"]
    assert (await client.get("/account/", params={"login": login}, headers=auth)).json()["balance"] == 10
    assert (await client.get("/order/orders", params={"login": login}, headers=auth)).json()["orders"] == []


async def test_what_the_document_allows_the_app_takes(client: httpx.AsyncClient) -> None:
    login, auth = await open_account(client, deposit=100)
    # an alias in any case, and a JSON integer written 2.0 (one number to JSON Schema)
    body = {"login": login, "operation": "TOP-UP", "sum": "  10.5 "}
    r = await client.put("/account/operation", json=body, headers=auth)
    assert (r.status_code, r.json()["operation"], r.json()["balance"]) == (200, "deposit", 110.5)
    item = {"name": "tea", "quantity": 2.0, "price": "1.25"}
    r = await client.post("/order/createOrder", json={"login": login, "items": [item]}, headers=auth)
    assert (r.status_code, r.json()["price"], r.json()["items"][0]["quantity"]) == (200, 2.5, 2)
    # price and items together, the price being their total: the one shape the document leaves out
    r = await client.post(
        "/order/createOrder", json={"login": login, "price": 2.5, "items": [item]}, headers=auth
    )
    assert r.status_code == 200, r.text
