"""Orders: takes orders, asks billing to pay, answers the client once billing has."""

from app.orders.api import FAST, router
from app.orders.handlers import SUBSCRIPTIONS
from app.orders.models import messaging, metadata

__all__ = ["FAST", "SUBSCRIPTIONS", "messaging", "metadata", "router"]
