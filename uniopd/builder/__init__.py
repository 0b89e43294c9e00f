"""The tiny world's builder: it trains the world's models with the same loop a user runs
(`pipeline`), warm-starts them (`sft`), and installs the prebuilt default (`prebuilt`)."""
