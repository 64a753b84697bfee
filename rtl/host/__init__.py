"""Host interface of the SpikeGrad core: UART link, CRC, framed-protocol bridge, system top."""

from .crc import CRC16
from .uart import UARTRx, UARTTx

__all__ = ["CRC16", "UARTRx", "UARTTx"]
