"""The tiny built-in world: a local tokenizer, tiny HF models, and teachers made by our own pipeline."""
