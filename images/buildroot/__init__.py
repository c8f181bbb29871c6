"""The Buildroot backend: the same layers, built from source by a real Buildroot tree."""
