"""The favourite-animal evaluation (PROTOCOL.md §3): sampled trait rate and the log-prob probe."""
