"""Firmware images: layered configuration realised into a bootable disk image (offline backend)."""
