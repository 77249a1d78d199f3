"""The web app: a Gradio page (and its HTTP API) on the same TTAPipeline as run_inference.sh. Imports models,
evaluation and utils; never bins."""
