"""cocotb bench of the SpikeGrad Softmax-CE error unit."""
