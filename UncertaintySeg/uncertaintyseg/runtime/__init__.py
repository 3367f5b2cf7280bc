"""The process a run lives in: CPU threads, signals, allocator, progress (ground
floor)."""
