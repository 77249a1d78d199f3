"""The text-to-audio entry points (each answers --help without importing the models)."""
