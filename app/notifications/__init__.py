"""Notifications: keeps the messages other modules ask to send to a customer."""

from app.notifications.api import FAST, router
from app.notifications.handlers import SUBSCRIPTIONS
from app.notifications.models import messaging, metadata

__all__ = ["FAST", "SUBSCRIPTIONS", "messaging", "metadata", "router"]
