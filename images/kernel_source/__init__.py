"""Linux kernels built from Debian's source package with the layers' kernel fragments (kernel = "source")."""
