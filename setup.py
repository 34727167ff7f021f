"""Thin shim for tools that still call setup.py; pyproject.toml holds the project metadata."""

from setuptools import setup

setup()
