"""Data: load any source into `Problem`s, and sample training prompts from them."""

from uniopd.data.errors import DataError
from uniopd.data.sampler import PromptSampler
from uniopd.data.sources import SOURCES, load_source

__all__ = ["SOURCES", "DataError", "PromptSampler", "load_source"]
