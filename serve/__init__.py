"""The Gradio demo (``rdet serve``); see :mod:`serve.app`. Only this package imports gradio."""
