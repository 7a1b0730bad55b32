"""Speed, memory and quality benchmarks; run them all with ``make bench``."""
