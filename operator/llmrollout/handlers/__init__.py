"""The Kopf shell. Importing this package registers the handlers."""

from llmrollout.handlers import llmdeployment

__all__ = ["llmdeployment"]
