"""`uniopd board`: a live local TensorBoard over run directories (uniopd/board/command.py)."""
