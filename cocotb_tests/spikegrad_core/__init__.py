"""cocotb benches of the SpikeGrad core against the golden model."""
