"""Ultra-low-bit models for robots: QAT in torch, a torch.fx compiler to a packed integer
artifact, bit-serial C kernels, a TFLite int8 baseline, and OTA deployment (docs/lowbit.md)."""

__version__ = "0.1.0"
