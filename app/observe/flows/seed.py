"""The seed diagram's own words (../shared/seed/, «Событийное взаимодействие с использованием брокера»)
for the hops of a flow: ``labels=seed`` draws a flow so that it can be laid next to the seed and read
line by line. A hop the seed does not draw (a login, an event no one there consumes, a redelivery)
keeps its event wording. ``\\n`` is the seed's own line break (sequencediagram.org's escape).
"""

from __future__ import annotations

from http import HTTPStatus

from app.observe.flows.recorder import Flow, Hop

# (method, path) -> the seed's words for the request; createOrder's depend on the order's outcome
REQUESTS = {
    ("POST", "/person/register"): "Создание УЗ\\n[POST /person/register]",
    ("PUT", "/account/operation"): "Пополнение счета\\n[PUT account/operation]\\nbody: login, operation, sum",
    ("GET", "/account/"): "Проверка баланса\\n[GET /account/?login= ]",
    ("GET", "/account"): "Проверка баланса\\n[GET /account/?login= ]",
    ("GET", "/notice/notices/"): "Просмотр уведомлений\\n[GET /notice/notices/?login= ]",
    ("GET", "/notice/notices"): "Просмотр уведомлений\\n[GET /notice/notices/?login= ]",
}
ORDER = {
    "paid": "Создание заказа, на который хватает денежных средств\\n[POST /order/createOrder]"
    "\\nbody: данные заказа",
    "rejected": "Создание заказа, на который не хватает денежных средств\\n[POST /order/createOrder]"
    "\\nbody: данные заказа",
    "": "Создание заказа\\n[POST /order/createOrder]\\nbody: данные заказа",
}
# what the seed writes after "HTTP 200 OK" on each reply
REPLY_BODIES = {
    ("GET", "/account/"): "\\nbody: summary",
    ("GET", "/account"): "\\nbody: summary",
}
NOTICES = ("/notice/notices/", "/notice/notices")

# (event type, the order's outcome or "register") -> the seed's words for its publication
PUBLISHED = {
    ("person.registered.v1", ""): "Событие для создания аккаунта",
    ("billing.notification_requested.v1", "register"): "Событие для нотификации о создании аккаунта",
    (
        "billing.notification_requested.v1",
        "paid",
    ): "Создание события для нотификации о списании денежных средств",
    ("billing.notification_requested.v1", "rejected"): (
        "Создание события для нотификации о нехватке денежных средств"
    ),
    ("orders.payment_requested.v1", "paid"): "Создание события по списанию денежных средств\\n",
    ("orders.payment_requested.v1", "rejected"): "Создание события для списания денежных средств",
    ("orders.payment_requested.v1", ""): "Создание события по списанию денежных средств\\n",
    ("billing.payment_succeeded.v1", ""): "Создание события после списания денежных средств",
    ("billing.payment_failed.v1", ""): "Создание события о нехватке денежных средств",
}
# the seed writes every arrow to the broker or the client backwards (``Brocker-service<-Billing-service``)
# but this one: drawn its way, the two texts compare line for line
FORWARD = frozenset({"Событие для создания аккаунта"})
# (module, the note's first word) -> the seed's self-arrow; billing's "withdraw" only for an order
NOTES = {
    ("billing", "open"): "Создание аккаунта",
    ("billing", "withdraw"): "Списание денежных средств",
    ("billing", "refuse"): "Обработка события",
    ("notifications", "store"): "Сохранение сообщений",
    ("orders", "save"): "Сохранение заказа",
    ("orders", "mark"): "Сохранение информации",
}


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def outcome(flow: Flow) -> str:
    """ "paid" / "rejected" for an order's flow once billing answered, "register" for a sign-up's."""
    types = {h.label for h in flow.hops if h.kind == "published"}
    if "billing.payment_failed.v1" in types:
        return "rejected"
    if "billing.payment_succeeded.v1" in types:
        return "paid"
    return "register" if "person.registered.v1" in types else ""


def words(flow: Flow, hop: Hop, result: str) -> str | None:
    """The seed's words for ``hop`` of ``flow`` (``result``: :func:`outcome`), or None if it has none."""
    if hop.kind in ("request", "reply"):
        method, _, path = hop.label.partition(" ")
        if hop.kind == "request":
            if (method, path) == ("POST", "/order/createOrder"):
                return ORDER.get(result, ORDER[""])
            return REQUESTS.get((method, path))
        if (method, path) not in REQUESTS and (method, path) != ("POST", "/order/createOrder"):
            return None
        status = f"HTTP {hop.status} {_phrase(hop.status)}"
        if path in NOTICES:
            return f"HTTP {hop.status}\\nbody: messages" if hop.status == 200 else status
        if path == "/order/createOrder" and result == "rejected" and hop.status == 200:
            return "HTTP 200 OK\\n\\nbody: isPaid = false"
        return status + REPLY_BODIES.get((method, path), "")
    if hop.kind == "published":
        key = (
            result
            if hop.label in ("billing.notification_requested.v1", "orders.payment_requested.v1")
            else ""
        )
        return PUBLISHED.get((hop.label, key))
    if hop.kind in ("delivered", "redelivered", "duplicate"):
        if hop.module == "notifications":
            return "Получить сообщения" if result == "register" else "Получение сообщений"
        return "Получение событий"
    if hop.kind == "note":
        verb = hop.label.partition(" ")[0]
        if (hop.module, verb) == ("billing", "withdraw") and flow.kind not in ("order", ""):
            return None  # a withdrawal through PUT /account/operation: the seed has only deposits
        return NOTES.get((hop.module, verb))
    return None
