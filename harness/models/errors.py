"""The one error a model or adapter that cannot be found or loaded raises."""


class ModelLoadError(RuntimeError):
    """A model or adapter could not be found or loaded; the message names it."""
