"""The disk under a run: writes that fail for space or I/O become one clear fault
(faults.py), and folders that cannot be written are refused before any compute (writable.py)."""
