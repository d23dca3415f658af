"""Person: registers people and announces them."""

from app.edge.fastlane import FastRoute
from app.messaging.inbox import ModuleHandler
from app.person.api import router
from app.person.models import messaging, metadata

SUBSCRIPTIONS: dict[str, ModuleHandler] = {}
FAST: dict[tuple[str, str], FastRoute] = {}  # no hot route

__all__ = ["FAST", "SUBSCRIPTIONS", "messaging", "metadata", "router"]
