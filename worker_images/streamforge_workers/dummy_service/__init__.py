"""dummy-service: a worker that does no real work, for testing the control plane end to end."""
