"""modelbus gateway: the OpenAI-compatible HTTP front door onto the event log."""
