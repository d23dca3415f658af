"""``python -m app bench``: its flags (options.py: standard library only, so ``--help`` needs no extra),
the closed-loop load generator (load.py), its own server (server.py), what a phase measured
(stats.py) and the report it writes (report.py)."""
