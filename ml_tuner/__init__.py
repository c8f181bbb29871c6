"""Pass-order tuner: a coreset of LLVM pass sequences ranked by a GNN, after Liang et al. (ICML 2023)."""
