"""SpikeGradSystem: HostBridge + SpikeGradCore (+ optionally an EXODUS network) behind two UART pins
(what an FPGA top instantiates)."""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikecore.config import ExodusConfig, SpikeGradConfig

from rtl.spikegrad.layouts import COUNTER_NAMES, spike_layout, weight_access_layout

from .bridge import HostBridge
from rtl.skid import RegisterSlice, SkidBuffer

__all__ = ["SpikeGradSystem", "DEFAULT_TIMEOUT_MS"]

DEFAULT_TIMEOUT_MS = 50   # idle gap inside a frame that drops it (USB-serial adapters pause ~1 ms)


class SpikeGradSystem(wiring.Component):
    """The SpikeGrad core with its UART host interface.

    Parameters
    ----------
    cfg : SpikeGradConfig.
    clk_freq : clock frequency in Hz.  baud : UART bit rate (``clk_freq / baud`` >= 4 clocks per bit).
    timeout_ms : idle gap inside a frame that drops it; ``timeout_cycles`` overrides it.
    max_payload : the bridge's request buffer (default from the wire format).
    core : factory ``cfg -> component`` with the SpikeGradCore ports (default :class:`SpikeGradCore`).
    exodus : an :class:`ExodusConfig`: also build an :class:`rtl.exodus.network.ExodusNetwork` of its
        layers, reached through the bridge's EX_* commands; None (default): SpikeGrad only.
    registered_walk_end : passed to :class:`HostBridge` (a timing option; same behaviour).

    Members
    -------
    uart_rx : In(1).  uart_tx : Out(1).
    leds : Out(4) -- 0: busy (executing or answering), 1: receiving a frame,
        2: the last response was an error, 3: the core or an EXODUS engine is busy.
    """

    uart_rx: In(1, init=1)
    uart_tx: Out(1, init=1)
    leds: Out(4)

    def __init__(self, cfg: SpikeGradConfig, *, clk_freq: float, baud: int, timeout_ms: float = DEFAULT_TIMEOUT_MS,
                 timeout_cycles: int | None = None, max_payload: int | None = None, core=None,
                 exodus: ExodusConfig | None = None, registered_walk_end: bool = False):
        if not isinstance(cfg, SpikeGradConfig):
            raise TypeError(f"cfg must be a SpikeGradConfig, not {cfg!r}")
        if not clk_freq > 0 or not baud > 0:
            raise ValueError(f"clk_freq and baud must be positive, got {clk_freq!r}, {baud!r}")
        divisor = round(clk_freq / baud)
        if abs(clk_freq / divisor - baud) > 0.02 * baud:
            raise ValueError(f"baud {baud} is more than 2 % off with a {clk_freq} Hz clock (divisor {divisor})")
        if timeout_cycles is None:
            timeout_cycles = max(16, round(clk_freq * timeout_ms / 1000))
        if core is None:
            from rtl.spikegrad import SpikeGradCore as core
        self._cfg = cfg
        self._bridge = HostBridge(cfg, divisor=divisor, timeout_cycles=timeout_cycles, max_payload=max_payload,
                                  exodus=exodus, registered_walk_end=registered_walk_end)
        self._core = core(cfg)
        self._exodus = None
        if exodus is not None:
            from rtl.exodus.network import ExodusNetwork
            self._exodus = ExodusNetwork(exodus)
        super().__init__()

    @property
    def cfg(self) -> SpikeGradConfig:
        return self._cfg

    @property
    def bridge(self) -> HostBridge:
        return self._bridge

    @property
    def exodus(self):
        """The :class:`~rtl.exodus.network.ExodusNetwork`, or None."""
        return self._exodus

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = br = self._bridge
        m.submodules.core = core = self._core
        wiring.connect(m, br.cmd, core.cmd)
        # Host weight accesses through a register slice: the bridge drives them from its
        # frame FSM, the core decodes the address range and muxes the bank ports with the
        # update unit; together that was the iCE40's critical path.
        m.submodules.weight_slice = weight_slice = RegisterSlice(weight_access_layout(self._cfg))
        wiring.connect(m, br.weights, weight_slice.i)
        wiring.connect(m, weight_slice.o, core.weights)
        # The spike stream through a register slice: the core's ready comes from its
        # queue levels and control state, the bridge's valid from its expansion loop.
        m.submodules.spike_slice = spike_slice = SkidBuffer(spike_layout(self._cfg))
        wiring.connect(m, br.spikes, spike_slice.i)
        wiring.connect(m, spike_slice.o, core.spikes)
        for name in ("result", "weights_rdata"):
            wiring.connect(m, getattr(core, name), getattr(br, name))
        m.d.comb += [
            core.error_shift.eq(br.error_shift),
            core.clear_flags.eq(br.clear_flags),
            br.flags.eq(core.flags),
            # field by field: a core with narrower counters is zero-extended
            *[getattr(br.counters, k).eq(getattr(core.counters, k)) for k in COUNTER_NAMES],
            br.core_busy.eq(core.busy),
            br.rx.eq(self.uart_rx),
            self.uart_tx.eq(br.tx),
        ]
        engines_busy = core.busy
        if self._exodus is not None:
            m.submodules.exodus = net = self._exodus
            # Accesses and commands go straight to the network: each engine takes them into
            # registers, and its ready is a register (TemporalLayerEngine), so no register
            # slice is needed here (one would be another 600-bit copy of the G/GP words).
            wiring.connect(m, br.ex_access, net.access)
            wiring.connect(m, br.ex_cmd, net.cmd)
            # read data back through one too: the engines' answers are multiplexed across the
            # network, and the bridge loads them into its byte shifter
            m.submodules.ex_rdata_slice = rdata_slice = RegisterSlice(net.rdata.payload.shape())
            wiring.connect(m, net.rdata, rdata_slice.i)
            wiring.connect(m, rdata_slice.o, br.ex_rdata)
            m.d.comb += [br.ex_busy.eq(net.busy), net.status_layer.eq(br.ex_status_layer),
                         br.ex_status.eq(net.status)]
            engines_busy = core.busy | net.busy.any()
        m.d.comb += self.leds.eq(br.busy | (br.receiving << 1) | (br.error << 2) | (engines_busy << 3))
        return m
