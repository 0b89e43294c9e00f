"""uniopd: on-policy distillation of language models, with the Uni-OPD recipe (arXiv 2605.03677)."""

__version__ = "0.1.0"
