"""The liminal-training job server: HTTP API, persistence and artifact storage."""
