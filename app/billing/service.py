from __future__ import annotations

from sqlalchemy import BigInteger, String, bindparam, select, update

from app.billing.events import AccountCreated, NotificationRequested, PaymentFailed, PaymentSucceeded
from app.billing.models import accounts, messaging, operations, payments
from app.billing.schemas import Balance, OperationBody, OperationResult
from app.bus import new_id
from app.money import to_text
from app.problems import Conflict, NotFound
from app.storage import idempotency
from app.storage.sql import Reader, Sql
from app.storage.types import UtcDateTime
from app.storage.uow import UnitOfWork

# a ceiling far above any real balance that keeps every sum inside a signed 64-bit column
MAX_BALANCE = 10**15

# statements are built once and run on the driver (app/storage/sql.py for the measured why)
_login = bindparam("b_login", type_=String)
_amount = bindparam("b_amount", type_=BigInteger)
_now = bindparam("b_now", type_=UtcDateTime)
# one conditional UPDATE, not read-then-write: concurrent orders must not overdraw
TAKE = Sql(
    update(accounts)
    .where(accounts.c.login == _login, accounts.c.balance >= _amount)
    .values(balance=accounts.c.balance - _amount, updated_at=_now)
    .returning(accounts.c.balance)
)
# parallel deposits must all count, and no balance may pass the ceiling
GIVE = Sql(
    update(accounts)
    .where(accounts.c.login == _login, accounts.c.balance <= MAX_BALANCE - _amount)
    .values(balance=accounts.c.balance + _amount, updated_at=_now)
    .returning(accounts.c.balance)
)
BALANCE = Sql(select(accounts.c.balance, accounts.c.updated_at).where(accounts.c.login == _login))
OPEN = Sql.insert(accounts, ignore=True)
# the payment row keyed by order id: a second request for the same order inserts nothing
CLAIM_PAYMENT = Sql.insert(payments, ignore=True)
REJECT = Sql(
    update(payments)
    .where(payments.c.order_id == bindparam("b_order_id"))
    .values(status="rejected", reason=bindparam("b_reason"))
)
RECORD_OPERATION = Sql.insert(operations)


def open_account(uow: UnitOfWork, login: str) -> bool:
    now = uow.now
    account_id = new_id()
    opened = uow.run(
        OPEN, {"id": account_id, "login": login, "balance": 0, "created_at": now, "updated_at": now}
    )
    if not opened:
        return False
    uow.note("open account, balance 0.00", login=login)
    uow.emit(AccountCreated(account_id=account_id, login=login, balance=0), subject=login)
    uow.emit(
        NotificationRequested(
            login=login, kind="account_created", text=f"Account created for {login}: balance 0.00"
        ),
        subject=login,
    )
    return True


def apply_operation(uow: UnitOfWork, body: OperationBody, key: str | None) -> OperationResult:
    operation_id = new_id()
    # keys are per login: two users' "1" must not collide
    scope = f"account_operation:{body.login}"
    if key is not None:
        fp = idempotency.fingerprint(body)
        earlier = idempotency.claim(uow, messaging.idempotency, scope, key, fp, operation_id)
        if earlier is not None:
            return OperationResult.model_validate(earlier.response)
    if body.operation == "deposit":
        balance = deposit(uow, body.login, body.sum)
    else:
        balance = withdraw(uow, body.login, body.sum)
    uow.run(
        RECORD_OPERATION,
        {
            "id": operation_id,
            "login": body.login,
            "kind": body.operation,
            "amount": body.sum,
            "balance_after": balance,
            "created_at": uow.now,
        },
    )
    uow.note(f"{body.operation} {to_text(body.sum)}, balance {to_text(balance)}", login=body.login)
    result = OperationResult(
        login=body.login, operation=body.operation, sum=body.sum, balance=balance, operation_id=operation_id
    )
    if key is not None:
        idempotency.remember(uow, messaging.idempotency, scope, key, result.model_dump())
    return result


def deposit(uow: UnitOfWork, login: str, amount: int) -> int:
    row = uow.first(GIVE, {"b_login": login, "b_amount": amount, "b_now": uow.now})
    if row is not None:
        return int(row[0])
    if _balance(uow, login) is None:
        raise AccountNotFound(login)
    raise BalanceLimit(f"a balance may not exceed {to_text(MAX_BALANCE)}")


def withdraw(uow: UnitOfWork, login: str, amount: int) -> int:
    balance = _take(uow, login, amount)
    if balance is not None:
        return balance
    if _balance(uow, login) is None:
        raise AccountNotFound(login)
    raise InsufficientFunds(f"balance of {login!r} is below {to_text(amount)}")


def pay_order(uow: UnitOfWork, order_id: str, login: str, amount: int) -> None:
    """Charge an order once: the payment row keyed by order id turns a second request into a no-op.

    The row goes in as paid and only a refusal rewrites it: the common case is one INSERT and one
    conditional UPDATE (no other transaction sees the row before this one commits it)."""
    claim = {"order_id": order_id, "login": login, "amount": amount, "status": "paid", "reason": None}
    if not uow.run(CLAIM_PAYMENT, {**claim, "created_at": uow.now}):
        return
    balance = _take(uow, login, amount)
    if balance is not None:
        uow.note(f"withdraw {to_text(amount)}, balance {to_text(balance)}", login=login)
        uow.emit(
            PaymentSucceeded(order_id=order_id, login=login, amount=amount, balance=balance), subject=login
        )
        text = f"Order {order_id[:8]}… paid: {to_text(amount)} withdrawn, balance {to_text(balance)}"
        uow.emit(
            NotificationRequested(login=login, kind="payment_succeeded", text=text, order_id=order_id),
            subject=login,
        )
        return
    current = _balance(uow, login)
    short = order_id[:8]
    if current is None:
        reason, text = "account_not_found", f"Order {short}… rejected: no account for {login}"
    else:
        reason = "insufficient_funds"
        text = (
            f"Order {short}… rejected: insufficient funds, price {to_text(amount)}, "
            f"balance {to_text(current)}"
        )
    shown = "no account" if current is None else f"balance {to_text(current)}"
    uow.note(f"refuse {to_text(amount)}: {reason.replace('_', ' ')}, {shown}", login=login)
    uow.run(REJECT, {"b_order_id": order_id, "b_reason": reason})
    uow.emit(
        PaymentFailed(order_id=order_id, login=login, amount=amount, reason=reason, balance=current),
        subject=login,
    )
    uow.emit(
        NotificationRequested(login=login, kind="payment_failed", text=text, order_id=order_id), subject=login
    )


def get_balance(reader: Reader, login: str) -> Balance:
    row = reader.first(BALANCE, {"b_login": login})
    if row is None:
        raise AccountNotFound(login)
    return Balance(login=login, balance=row.balance, updated_at=row.updated_at)


def _take(uow: UnitOfWork, login: str, amount: int) -> int | None:
    row = uow.first(TAKE, {"b_login": login, "b_amount": amount, "b_now": uow.now})
    return None if row is None else int(row[0])


def _balance(reader: Reader, login: str) -> int | None:
    row = reader.first(BALANCE, {"b_login": login})
    return None if row is None else int(row[0])


class AccountNotFound(NotFound):
    slug, title = "account-not-found", "Account not found"

    def __init__(self, login: str) -> None:
        # right after registration the account may still be on its way through the bus
        super().__init__(
            f"no account for login {login!r} (if it was just registered, it is being opened: retry shortly)",
            headers={"Retry-After": "1"},
        )


class InsufficientFunds(Conflict):
    slug, title = "insufficient-funds", "Insufficient funds"


class BalanceLimit(Conflict):
    slug, title = "balance-limit", "Balance limit reached"
