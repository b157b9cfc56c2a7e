"""The simulated OpenAI-compatible upstream: task sets, response model, aiohttp server."""
