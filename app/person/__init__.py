"""Person: registers people and announces them."""

from app.messaging.inbox import ModuleHandler
from app.person.api import router
from app.person.models import messaging, metadata

SUBSCRIPTIONS: dict[str, ModuleHandler] = {}

__all__ = ["SUBSCRIPTIONS", "messaging", "metadata", "router"]
