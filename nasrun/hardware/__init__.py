"""What an architecture costs on hardware, known before it trains: its latency (a benchmark's measured table, or
timed here) and its size (parameters, FLOPs). Hardware-aware search constrains and optimises these."""
