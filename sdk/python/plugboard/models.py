"""The typed documents of the Plugboard HTTP API (TypedDicts generated from the OpenAPI
document into ``plugboard._models``): ``from plugboard.models import Subscription, Event``."""

from ._models import *  # noqa: F401,F403
from ._models import __all__  # noqa: F401
