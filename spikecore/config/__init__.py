"""The single source of truth for every width, threshold and size.

One configuration object per engine drives RTL elaboration, the golden
model and the weight-file format. Nothing else in the project may state a
bit width on its own: it is derived from these objects.
"""

from .errors import ConfigError
from .spikegrad import SpikeGradConfig
from .exodus import ExodusConfig

__all__ = ["ConfigError", "SpikeGradConfig", "ExodusConfig"]
