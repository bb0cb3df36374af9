"""The measurements behind `make bench` (pipeline/commands/bench.py): machine, data and model throughput."""
