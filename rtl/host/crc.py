"""CRC-16/CCITT-FALSE over a byte stream, one byte per cycle.

The polynomial and initial value come from :mod:`spikecore.host.protocol`;
the byte update is the bit-serial algorithm of
:func:`spikecore.host.protocol.crc16_update` unrolled over the 8 bits.
"""


from amaranth.hdl import Cat, Const, Module, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikecore.host.protocol import CRC_INIT, CRC_POLY


def _byte_update_terms():
    """For each CRC bit after one byte: the sets of old-CRC bits and data bits it is the XOR of.

    Found by running the bit-serial algorithm on symbols (sets of bits, XOR = symmetric difference).
    """
    reg = [({k}, set()) for k in range(16)]                          # (crc bits, data bits)
    for k in range(8):
        reg[8 + k] = (reg[8 + k][0], reg[8 + k][1] ^ {k})            # crc ^= byte << 8
    for _ in range(8):
        top = reg[15]
        shifted = [(set(), set())] + reg[:15]
        reg = [(a ^ top[0], b ^ top[1]) if (CRC_POLY >> i) & 1 else (a, b) for i, (a, b) in enumerate(shifted)]
    return reg


_TERMS = _byte_update_terms()


def crc16_next(crc: Value, byte: Value) -> Value:
    """The CRC after ``byte``: the eight serial steps of the algorithm, folded into one XOR per bit."""
    bits = []
    for crc_bits, data_bits in _TERMS:
        terms = [crc[k] for k in sorted(crc_bits)] + [byte[k] for k in sorted(data_bits)]
        bits.append(Cat(*terms).xor() if terms else Const(0, 1))
    return Cat(*bits)


class CRC16(wiring.Component):
    """Running CRC-16/CCITT-FALSE.

    Members
    -------
    data : In(8), the next byte, consumed when ``en`` is high.
    en : In(1).
    clear : In(1), restart at the initial value (has priority over ``en``).
    crc : Out(16), the CRC of the bytes consumed since ``clear``.
    """

    data: In(8)
    en: In(1)
    clear: In(1)
    crc: Out(16, init=CRC_INIT)

    def elaborate(self, platform):
        m = Module()
        with m.If(self.clear):
            m.d.sync += self.crc.eq(CRC_INIT)
        with m.Elif(self.en):
            m.d.sync += self.crc.eq(crc16_next(self.crc, self.data))
        return m
