"""Verifiable domains: the problem record and the synthetic tiny-world domains."""

from uniopd.tasks.problem import Problem

__all__ = ["Problem"]
