"""FPGA board tops and bitstream builds (iCEBreaker, ULX3S-85F) with the YoWASP tools."""
