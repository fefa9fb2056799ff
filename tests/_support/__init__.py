"""Fixtures and helpers shared by more than one test package (imported by their conftest.py)."""
