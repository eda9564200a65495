"""modelbus package."""
