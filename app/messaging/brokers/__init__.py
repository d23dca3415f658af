"""Bus adapters for real brokers; each implements app.bus.Bus and passes tests/conformance/."""
