"""eventcollab: event collaboration through a message broker."""
