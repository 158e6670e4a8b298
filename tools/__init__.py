"""Command-line tools, benchmarks and wiring: the only place where IO, clocks and the chain meet."""
