"""Showing messages as their recipients will see them, and what changed since a git ref."""
