"""camscan: find the IP cameras and recorders on a network, say who made them, report what rules they break.

The public facade is small: the Evidence model and the identification engine.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
