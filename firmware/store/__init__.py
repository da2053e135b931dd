"""Stored data (SQLite): the call history with each call's media statistics."""
