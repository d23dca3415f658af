"""Billing: accounts, deposits and withdrawals, and paying for orders."""

from app.billing.api import FAST, router
from app.billing.handlers import SUBSCRIPTIONS
from app.billing.models import messaging, metadata

__all__ = ["FAST", "SUBSCRIPTIONS", "messaging", "metadata", "router"]
