"""modelbus_runtime: what every service needs once — settings, broker plumbing, the consumer
loop with at-least-once commits, dead-lettering, JSON logging, health and metrics."""
