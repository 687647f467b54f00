"""The node: the only layer that owns time, the event loop and the outside world."""
