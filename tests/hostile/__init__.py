"""Hostile and malformed inputs for kaudit (issue #8): see ``corpus.py`` and docs/security.md."""
