"""Board tops: a PLL-generated ``sync`` clock, a reset held until lock, and the
design's UART on the board's USB serial port.

The design is any Elaboratable with ``uart_rx`` (In 1), ``uart_tx`` (Out 1) and
optionally ``leds`` (Out n, shown on the board's LEDs); normally
:class:`rtl.host.top.SpikeGradSystem` (with the board's EXODUS network where the
board lists the ``"exodus"`` engine).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from amaranth import ClockDomain, Elaboratable, Instance, Module, Signal
from amaranth.lib.cdc import AsyncFFSynchronizer, ResetSynchronizer

from .pll import ecp5_pll, ice40_pll


@dataclass(frozen=True)
class Board:
    name: str
    platform_factory: Callable
    family: str            # "ice40" | "ecp5"
    input_clock: str       # resource name of the oscillator
    input_mhz: float
    default_mhz: float     # target clock of the core
    engines: tuple[str, ...]
    config: str | None = None        # default SpikeGradConfig, a file in fpga/configs/ (None: the built-in one)
    softmax_divider: str = "pipelined"   # SoftmaxError divider ("iterative": ~10x less logic, small FPGAs)
    counter_bits: int = 32           # SpikeGradCore performance counter width (zero-extended on the wire)
    register_ram_outputs: bool = True  # the SpikeGrad engines' stage-1 registers (False: fewer cells, iCE40)
    registered_walk_end: bool = False  # HostBridge's walk end test in a register (ECP5)
    global_reset: bool = False       # ECP5: the synchronous reset through a DCCA onto a global network
    synth_opts: str = ""             # extra options of Yosys' synth_<family>
    script_after_read: str = ""      # Yosys commands run on the design before synth_<family>
    nextpnr_opts: str = ""           # extra options of nextpnr (placer/router choices measured per board)
    exodus_config: str | None = None  # the EXODUS network (an ExodusConfig file in fpga/configs/), with "exodus"

    @property
    def config_path(self) -> Path | None:
        """The board's default configuration file, or None for the built-in default."""
        return CONFIG_DIR / self.config if self.config else None

    def load_config(self):
        """The board's default :class:`~spikecore.config.SpikeGradConfig`."""
        from spikecore.config import SpikeGradConfig
        p = self.config_path
        return SpikeGradConfig.load(p) if p else SpikeGradConfig()

    def load_exodus_config(self):
        """The board's :class:`~spikecore.config.ExodusConfig`, or None when it carries no EXODUS engine."""
        from spikecore.config import ExodusConfig
        if "exodus" not in self.engines:
            return None
        return ExodusConfig.load(CONFIG_DIR / self.exodus_config)


CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def _icebreaker():
    from amaranth_boards.icebreaker import ICEBreakerPlatform
    return ICEBreakerPlatform()


def _ulx3s_85f():
    from amaranth_boards.ulx3s import ULX3S_85F_Platform
    return ULX3S_85F_Platform()


BOARDS = {
    # The iCE40UP5K (5280 LUT4, 30 EBR) needs narrower widths, the iterative divider and
    # engines without stage-1 registers (its block RAM is fast next to its logic).
    # ``-device u``: abc9 maps the logic with the UP5K's delays (synth_ice40 assumes an HX
    # part otherwise): on the current netlist 28.7 -> 29.8 MHz with seed 1, 30.9 with seed 2.
    # nextpnr seed 2: on this 99 %-full device the router does not converge for every
    # placement (with the HX delays seed 2 was still routing after 10 minutes), and the
    # figure moves by a few per cent from seed to seed; docs/fpga.md lists the seeds
    # measured. The CI smoke build checks that it still routes.
    "icebreaker": Board("icebreaker", _icebreaker, "ice40", "clk12", 12.0, 30.0, ("spikegrad",),
                        config="icebreaker.json", softmax_divider="iterative", counter_bits=24,
                        register_ram_outputs=False, synth_opts="-dff -device u", nextpnr_opts="--seed 2"),
    # The ECP5-85F also carries the EXODUS fitting-task network (250 -> 25 LIF -> 1 LIF, T = 200).
    # Router: nextpnr's default router1, which is timing-driven. Earlier dual netlists made it
    # stall (congestion that the global reset, the shift registers and the registered RAM ports
    # have since removed), so the board used router2 for a while; on the current netlists
    # router1 converges in about 7 minutes and gives a much faster routing than router2 on the
    # same placement (docs/fpga.md: 81.9 against 72.3 MHz on one netlist); --tmg-ripup lets it
    # rip up and reroute nets for timing (94.3 -> 96.3 MHz on one placement). The figure moves
    # by several MHz from seed to seed (docs/fpga.md lists the seeds measured; seed 5 meets
    # 100 MHz with the current netlist). The CI smoke build runs these exact options and
    # requires timing to be met, so an RTL change that loses it fails CI. The reset
    # rides a global network (global_reset): without it, router2 diverged on the same RTL.
    # The state machines' state registers lose their init attribute before synthesis, so that
    # Yosys' fsm pass recodes them one-hot (a state test is one flip-flop, not a decode of
    # five or six bits; fsm_detect skips registers with an initial value, and "auto" keeps
    # machines of 32 states or more binary). Every state register has the domain's
    # synchronous reset, which the board top holds from configuration until the PLL locks,
    # so none runs from its (now undefined) power-up value.
    "ulx3s-85f": Board("ulx3s-85f", _ulx3s_85f, "ecp5", "clk25", 25.0, 100.0, ("spikegrad", "exodus"),
                       exodus_config="ulx3s_exodus.json", nextpnr_opts="--seed 5 --tmg-ripup",
                       registered_walk_end=True, global_reset=True,
                       script_after_read='setattr -unset init w:*_state; setattr -set fsm_encoding "one-hot" w:*_state'),
}


class BoardTop(Elaboratable):
    """PLL + reset + the design, wired to the board's UART and LEDs."""

    def __init__(self, board: Board, design_factory: Callable[[float], Elaboratable], *, mhz: float | None = None):
        self.board = board
        self.design_factory = design_factory
        self.mhz = board.default_mhz if mhz is None else mhz
        pll = ice40_pll(board.input_mhz, self.mhz) if board.family == "ice40" else ecp5_pll(board.input_mhz, self.mhz)
        self.pll = pll
        self.achieved_mhz = pll.f_out
        self.board_leds = 2 if board.family == "ice40" else 8

    def elaborate(self, platform):
        m = Module()
        # The PLL drives the domain's clock net directly.
        m.domains.sync = cd = ClockDomain("sync")
        clk_out = cd.clk
        locked = Signal()
        p = self.pll
        if self.board.family == "ice40":
            pad = platform.request(self.board.input_clock, dir="-")
            m.submodules.pll = Instance(
                "SB_PLL40_PAD",
                p_FEEDBACK_PATH="SIMPLE", p_DIVR=p.divr, p_DIVF=p.divf, p_DIVQ=p.divq,
                p_FILTER_RANGE=p.filter_range,
                i_PACKAGEPIN=pad.io, i_RESETB=1, i_BYPASS=0,
                o_PLLOUTGLOBAL=clk_out, o_LOCK=locked)
        else:
            clkin = platform.request(self.board.input_clock, dir="i").i
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=str(int(self.board.input_mhz)),
                a_FREQUENCY_PIN_CLKOP=str(self.achieved_mhz),
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
                p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
                p_CLKI_DIV=p.clki_div, p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p.clkop_div,
                p_CLKOP_CPHASE=p.clkop_cphase, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
                p_CLKFB_DIV=p.clkfb_div,
                i_RST=0, i_STDBY=0, i_CLKI=clkin, o_CLKOP=clk_out, i_CLKFB=clk_out,
                i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
                i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=locked)
        if self.board.family == "ecp5" and self.board.global_reset:
            # The synchronous reset reaches nearly every flip-flop (about 15,000 on the dual
            # ULX3S design); through a DCCA it rides a global network, like the clock,
            # instead of taking general routing from one flip-flop to every slice's LSR
            # (router2 ran into congestion on that net among others).
            rst_local = Signal()
            m.submodules.reset_sync = AsyncFFSynchronizer(~locked, rst_local, o_domain="sync")
            m.submodules.reset_buf = Instance("DCCA", i_CLKI=rst_local, i_CE=1, o_CLKO=cd.rst)
        else:
            m.submodules.reset_sync = ResetSynchronizer(~locked, domain="sync")
        # No add_clock_constraint(clk_out): synthesis renames the net and nextpnr
        # would drop the constraint; build_board passes ``--freq`` (the target of
        # every clock without a constraint, i.e. the PLL output) instead.

        design = self.design_factory(self.achieved_mhz * 1e6)
        m.submodules.design = design
        uart = platform.request("uart", 0)
        m.d.comb += [design.uart_rx.eq(uart.rx.i), uart.tx.o.eq(design.uart_tx)]
        if hasattr(design, "leds"):
            for i in range(min(self.board_leds, len(design.leds))):
                m.d.comb += platform.request("led", i).o.eq(design.leds[i])
        return m
