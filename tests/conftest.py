"""Shared builders of tiny test data for the harness's unit tests."""
