"""The tiny world's builder: it trains the world's models with the same loop a user runs
(`pipeline`), warm-starts them (`sft`), and installs the shipped worlds' models (`prebuilt`: the
default, v5, and version 6's)."""
