"""Measures of generated and edited audio (analyser, distribution metrics, embedders, reports). Imports models,
preprocessors (SynthCaps' attributes) and utils; never app or bins."""
