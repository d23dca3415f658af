"""``python -m app bench``: the closed-loop load generator (load.py), its own server (server.py) and the
report it writes (report.py)."""

from app.ops.bench.load import main

__all__ = ["main"]
