"""Hand-written reference models, transcribed from the blog posts of docs/sources.md.

Tests compare the spec-built modules against them.
"""
