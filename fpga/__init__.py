"""fpga."""
