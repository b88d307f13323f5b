"""The experiment and training config files: pydantic schemas over harness/configfile.py."""
