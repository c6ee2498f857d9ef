"""The test suite (`pytest`); shared helpers in `tests/helpers.py`."""
