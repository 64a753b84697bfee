"""cocotb bench: the Verilated ``SpikeGradSystem`` (inside :class:`rtl.host.harness.UARTHarness`)
as a serial device on a local TCP socket.

Started by :class:`spikecore.host.transports.SimulatedSystem`. The host (pytest, a script)
connects to ``127.0.0.1:<port>`` with pyserial (``socket://``) and speaks the protocol. The bytes
travel as 8N1 bits on the system's ``uart_rx`` / ``uart_tx`` pins, put there and decoded by

* ``phy="hdl"``: the harness's own UART pair, fed from / drained into byte FIFOs (one Python wake
  per byte); the harness paces the host's bytes (holds them while the bridge is busy), so a host
  may send a batch of frames at once;
* ``phy="python"``: this bench, bit by bit (one wake per run of equal bits when sending, one per
  bit when receiving) -- independent of the RTL UART, about ten times slower.

Time: while the device is busy (``leds`` bit 0 or 3) or a byte is queued or on the wire, simulated
time runs in steps of a few byte times; when all is idle and the host sends nothing for 2 ms of
real time, simulated time jumps by ``timeout_cycles`` -- so a host that stops inside a frame sees
the device's frame timeout, as on a board. The bench ends when the host closes the connection.

Arguments (:func:`sim.runner.bench_args`): ``port``, ``divisor``, ``timeout_cycles``, ``phy``.
"""

from __future__ import annotations

import select
import socket
import time

import cocotb
from cocotb.triggers import FallingEdge, Timer

from sim.runner import bench_args
from sim.stream import CLOCK_PERIOD_NS, reset_dut, start_clock

IDLE_POLL_S = 0.002


def bit_runs(data: bytes):
    """(level, bits) runs of the 8N1 frames of ``data``, back to back."""
    runs = []
    for b in data:
        for bit in [0] + [(b >> i) & 1 for i in range(8)] + [1]:
            if runs and runs[-1][0] == bit:
                runs[-1][1] += 1
            else:
                runs.append([bit, 1])
    return runs


class PythonPhy:
    """Bits on the pins, driven and decoded here."""

    def __init__(self, dut, bit_ns, conn):
        self.dut, self.bit_ns, self.conn = dut, bit_ns, conn
        self.on_wire = False
        self.sent = 0
        dut.bypass.value = 1
        dut.pace.value = 0
        dut.uart_rx.value = 1

    def start(self):
        cocotb.start_soon(self._decode())

    async def _decode(self):
        dut, bit_ns = self.dut, self.bit_ns
        while True:
            await FallingEdge(dut.uart_tx)
            self.on_wire = True
            await Timer(bit_ns // 2, unit="ns")
            byte = 0
            for i in range(8):
                await Timer(bit_ns, unit="ns")
                byte |= int(dut.uart_tx.value) << i
            await Timer(bit_ns, unit="ns")
            assert int(dut.uart_tx.value) == 1, "stop bit low on uart_tx"
            self.conn.sendall(bytes([byte]))
            self.sent += 1
            self.on_wire = False

    def busy(self):
        return self.on_wire

    async def write(self, data):
        for level, n in bit_runs(data):
            self.dut.uart_rx.value = level
            await Timer(n * self.bit_ns, unit="ns")

    async def drain(self):
        pass


class HdlPhy:
    """Bytes into and out of the harness's FIFOs; its UART pair makes the bits."""

    def __init__(self, dut, bit_ns, conn):
        self.dut, self.conn = dut, conn
        self.sent = 0
        dut.bypass.value = 0
        dut.pace.value = 1
        dut.host_tx__valid.value = 0
        dut.host_rx__ready.value = 0

    def start(self):
        pass

    def busy(self):
        return int(self.dut.phy_busy.value)

    async def write(self, data):
        """Called mid-cycle: one byte per rising edge, inputs set between edges; returns mid-cycle."""
        dut = self.dut
        dut.host_tx__valid.value = 1
        for b in data:
            assert int(dut.host_tx__ready.value), "harness transmit FIFO full"
            dut.host_tx__payload.value = b
            await Timer(CLOCK_PERIOD_NS, unit="ns")
        dut.host_tx__valid.value = 0

    async def drain(self):
        dut = self.dut
        got = bytearray()
        while int(dut.host_rx__valid.value):
            got.append(int(dut.host_rx__payload.value))
            dut.host_rx__ready.value = 1
            await Timer(CLOCK_PERIOD_NS, unit="ns")
        dut.host_rx__ready.value = 0
        if got:
            self.conn.sendall(bytes(got))
            self.sent += len(got)


@cocotb.test(timeout_time=3000, timeout_unit="sec")
async def serve(dut):
    args = bench_args()
    bit_ns = args["divisor"] * CLOCK_PERIOD_NS
    idle_ns = args["timeout_cycles"] * CLOCK_PERIOD_NS
    busy_ns = 40 * bit_ns
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", args["port"]))
    srv.listen(1)
    srv.settimeout(600)

    start_clock(dut)
    conn = None
    phy = (PythonPhy if args.get("phy") == "python" else HdlPhy)(dut, bit_ns, None)
    await reset_dut(dut)
    # Every wait below is a whole number of clock periods from here: the bench always wakes
    # between edges (never at one), where values are settled and writes reach the next rising edge.
    await FallingEdge(dut.clk)
    await Timer(CLOCK_PERIOD_NS // 5, unit="ns")
    conn, _ = srv.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    phy.conn = conn
    phy.start()
    received = 0
    t0 = time.monotonic()
    while True:
        await phy.drain()
        active = phy.busy() or int(dut.leds.value) & 0b1001
        ready, _, _ = select.select([conn], [], [], 0 if active else IDLE_POLL_S)
        if ready:
            data = conn.recv(65536)
            if not data:
                break
            received += len(data)
            await phy.write(data)
        else:
            await Timer(busy_ns if active else idle_ns, unit="ns")
    conn.close()
    srv.close()
    wall = time.monotonic() - t0
    sim_ms = cocotb.utils.get_sim_time(unit="ms")
    dut._log.info(f"host link closed: {received} bytes in, {phy.sent} bytes out, "
                  f"{sim_ms:.3f} ms simulated in {wall:.1f} s")
