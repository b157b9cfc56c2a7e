"""IAPO proxy: an OpenAI-compatible proxy that answers each request with the prompt and the
number of samples that a PSST-trained policy picks for the caller's task and preferences."""

__version__ = "0.1.0"
__all__ = ["__version__"]
