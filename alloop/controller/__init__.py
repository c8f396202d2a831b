"""The campaign controller: drives the capabilities through the loop and owns nothing but the order."""

from alloop.controller.loop import Controller, Outcome

__all__ = ["Controller", "Outcome"]
