"""Tuning and capacity planning on the simulation: TTLs, memory sizes, seasonal scaling, growth."""
