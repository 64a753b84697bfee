"""Transports: how request frames reach a device and responses come back.

Every transport has the same small, synchronous interface (``write``,
``read_response``, ``transact``, ``close``), so one client and one set of
scripts and tests run against all of them:

* :class:`SerialTransport` -- pyserial: a real board (``/dev/ttyUSB1``, ``COM3``),
  or any pyserial URL (``socket://host:port``, ``loop://``);
* :class:`SimulatedSystem` -- the Verilated ``SpikeGradSystem`` under cocotb: the
  bench serialises every byte into real 8N1 bits on the design's ``uart_rx``
  pin and decodes ``uart_tx`` bit by bit; host and bench talk over a local
  TCP socket, so the host side is again a :class:`SerialTransport`;
* :class:`VirtualDevice` -- the reference model behind a pseudo-terminal, a
  serial device without hardware or Verilator (for quick tests of scripts).
"""

from __future__ import annotations

import os
import socket
import threading
import time

from .protocol import Cmd, Response, ResponseDecoder, encode_response


class SerialTransport:
    """Frames over pyserial.

    Parameters
    ----------
    port : a device name or a pyserial URL.  baud : bit rate (8N1).
    timeout : seconds to wait for a response.
    serial : an already open pyserial-like object (``read``, ``write``, ``reset_input_buffer``, ``close``)
        used instead of opening ``port``.
    """

    def __init__(self, port: str | None = None, baud: int = 115200, *, timeout: float = 2.0, serial=None):
        if serial is None:
            import serial as pyserial
            serial = pyserial.serial_for_url(port, baudrate=baud, bytesize=8, parity="N", stopbits=1,
                                             timeout=0.05)
        self._ser = serial
        self.timeout = timeout
        self._dec = ResponseDecoder()
        self._pending = []
        self.bytes_written = 0

    def write(self, data: bytes) -> None:
        self._ser.write(bytes(data))
        self.bytes_written += len(data)
        if hasattr(self._ser, "flush"):
            self._ser.flush()

    def read_response(self, timeout: float | None = None) -> Response:
        """The next response frame; :class:`TimeoutError` when none arrives in time."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self._pending:
            self._pending += self._dec.feed(self._ser.read(self._dec.needed()) or b"")
            if not self._pending and time.monotonic() > deadline:
                raise TimeoutError("no response from the device")
        return self._pending.pop(0)

    def transact(self, frame: bytes, timeout: float | None = None) -> Response:
        self.write(frame)
        return self.read_response(timeout)

    def drain(self, quiet: float = 0.2) -> bytes:
        """Read and drop whatever arrives until the line has been quiet for ``quiet`` seconds."""
        got = bytearray()
        last = time.monotonic()
        while time.monotonic() - last < quiet:
            b = self._ser.read(256)
            if b:
                got += b
                last = time.monotonic()
        self._dec = ResponseDecoder()
        self._pending = []
        return bytes(got)

    def close(self) -> None:
        self._ser.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SimulatedSystem:
    """The Verilated ``SpikeGradSystem(cfg)`` as a device: a context manager giving a :class:`SerialTransport`.

    The simulator runs in a background thread (``sim.runner.run_cocotb`` with the
    bench ``cocotb_tests.host_bridge.bench_uart``); the bench listens on a local
    TCP port and drives the design's UART pins with the bytes it receives.

    Parameters
    ----------
    cfg : the configuration to build.  divisor : clock cycles per UART bit (small: simulation speed).
    phy : ``"hdl"`` -- the bench hands bytes to a UART in the harness (:class:`rtl.host.harness.UARTHarness`),
        which puts the 8N1 bits on the system's pins (fast: one Python wake per byte); ``"python"`` -- the
        bench drives and decodes the bits of the pins itself (an independent check, about 10x slower).
    timeout_cycles : the bridge's frame timeout.  core : optional core factory (e.g. a stand-in).
    response_timeout : seconds the host waits for a response (simulated inference is slow).
    exodus : an :class:`~spikecore.config.ExodusConfig`: the system also carries that EXODUS network.
    registered_walk_end : the bridge's timing option of the same name (the ULX3S build uses it).
    """

    BENCH = "cocotb_tests.host_bridge.bench_uart"

    def __init__(self, cfg, *, divisor: int = 8, timeout_cycles: int = 2000, core=None, phy: str = "hdl",
                 response_timeout: float = 120.0, run_timeout: float = 3000, exodus=None,
                 registered_walk_end: bool = False):
        if phy not in ("hdl", "python"):
            raise ValueError(f"phy must be 'hdl' or 'python', got {phy!r}")
        self.phy = phy
        self.cfg = cfg
        self.divisor = divisor
        self.timeout_cycles = timeout_cycles
        self.core = core
        self.exodus = exodus
        self.registered_walk_end = registered_walk_end
        self.response_timeout = response_timeout
        self.run_timeout = run_timeout
        self.run = None
        self._error = None

    def verilog(self) -> str:
        from rtl.host.harness import UARTHarness
        from rtl.host.top import SpikeGradSystem
        from sim.verilog import generate_verilog
        top = SpikeGradSystem(self.cfg, clk_freq=100e6, baud=100e6 / self.divisor,
                              timeout_cycles=self.timeout_cycles, core=self.core, exodus=self.exodus,
                              registered_walk_end=self.registered_walk_end)
        return generate_verilog(UARTHarness(top, divisor=self.divisor), name="spikegrad_system")

    def __enter__(self) -> SerialTransport:
        from sim.runner import run_cocotb
        self.port = _free_port()
        text = self.verilog()
        args = {"port": self.port, "divisor": self.divisor, "timeout_cycles": self.timeout_cycles, "phy": self.phy}

        def target():
            try:
                self.run = run_cocotb(text, "spikegrad_system", self.BENCH, args=args, timeout=self.run_timeout,
                                      build_key=self.cfg.to_json() + (self.exodus.to_json() if self.exodus else ""))
            except BaseException as e:     # reported by __exit__
                self._error = e
        self._thread = threading.Thread(target=target, daemon=True)
        self._thread.start()
        while True:   # the build may take minutes: wait for the bench to listen
            if not self._thread.is_alive():
                raise RuntimeError(f"the simulation ended before it listened: {self._error!r}") from self._error
            try:
                import serial as pyserial
                ser = pyserial.serial_for_url(f"socket://127.0.0.1:{self.port}", timeout=0.05)
                ser._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # small frames, no Nagle
                break
            except (OSError, pyserial.SerialException):
                time.sleep(0.2)
        self.transport = SerialTransport(serial=ser, timeout=self.response_timeout)
        return self.transport

    def __exit__(self, exc_type, exc, tb):
        self.transport.close()
        self._thread.join(timeout=60)
        if self._error is not None and exc_type is None:
            raise self._error


class VirtualDevice:
    """The reference model (:class:`spikecore.host.model.BridgeModel` with the golden core) behind a
    pseudo-terminal: ``with VirtualDevice(cfg) as dev: SerialTransport(dev.port)``.

    An idle gap of ``gap_s`` seconds inside a frame times it out, like the hardware. With ``exodus``
    (an :class:`~spikecore.config.ExodusConfig`) it also serves the EX_* commands (golden fixed-point model).
    """

    def __init__(self, cfg, *, max_payload: int | None = None, gap_s: float = 0.05, core="golden", exodus=None):
        from .model import BridgeModel, golden_core
        self.model = BridgeModel(cfg, max_payload, core=golden_core if core == "golden" else core, exodus=exodus)
        self.gap_s = gap_s
        self.received = bytearray()

    def __enter__(self) -> "VirtualDevice":
        import pty
        import tty
        self._master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def _serve(self):
        import select
        while not self._stop.is_set():
            r, _, _ = select.select([self._master], [], [], self.gap_s)
            if r:
                try:
                    data = os.read(self._master, 4096)
                except OSError:
                    return
                self.received += data
                out = self.model.feed(data)
            else:
                out = self.model.gap()
            for resp in out:
                payload = resp.payload
                if payload is None:      # READ_STATUS / EX_STATUS: what the model knows
                    payload = (self.model.ex_status_snapshots if resp.cmd == Cmd.EX_STATUS
                               else self.model.status_snapshots).pop(0)
                os.write(self._master, encode_response(resp.status, resp.cmd, payload))

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
        os.close(self._master)
        os.close(self._slave)
