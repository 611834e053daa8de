"""Spec schemas (pydantic v2) for hardware and models, and their validation helpers."""
