"""The gate's two failure kinds: the run could not be done, or its input was bad (both exit 2)."""
from __future__ import annotations

from ..errors import WedcacheError


class GateError(WedcacheError):
    """The gate could not measure anything (the server did not start, Locust failed, no requests)."""


class GateInputError(GateError, ValueError):
    """A threshold file, a check name, a gate.json or a percentage is not usable; the message names it."""
