"""See the flow: the recorder (an Observer keeping recent flows), their drawing, and their routes."""

from app.observe.flows.recorder import FlowRecorder
from app.observe.flows.routes import router

__all__ = ["FlowRecorder", "router"]
