"""Billing: accounts, deposits and withdrawals, and paying for orders."""

from app.billing.api import router
from app.billing.handlers import SUBSCRIPTIONS
from app.billing.models import messaging, metadata

__all__ = ["SUBSCRIPTIONS", "messaging", "metadata", "router"]
