"""clipgate reference GPU worker: worker protocol v1 over FastAPI, CLIP embedding injection with diffusers."""

__version__ = "0.1.0"
