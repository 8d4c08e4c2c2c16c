"""
Receptive fields and the phase histogram
========================================

Train WLSC on whitened natural-image patches cut from the images that ship
with scikit-learn (and scikit-image, when installed), fit a 2-D Gabor to each
atom, and plot the atoms, Ringach's ``(nx, ny)`` sizes and the folded spatial
phase (the papers' Figure 1A). ``benchmarks/receptive_fields.py`` runs the
full comparison with sparse coding, ICA, k-means and random atoms.
"""

import matplotlib.pyplot as plt

from sklearn_wlsc import WeightedL1SparseCoder
from sklearn_wlsc.datasets import load_natural_image_patches
from sklearn_wlsc.receptive_fields import (
    fit_gabors,
    plot_atoms,
    plot_nx_ny,
    plot_phase_histogram,
    summarize_gabor_fits,
)

patch = 12
Y = load_natural_image_patches(patch_size=patch, n_patches=4000, random_state=0)
coder = WeightedL1SparseCoder(n_components=49, alpha=0.7, max_iter=30, random_state=0).fit(Y)
fit = fit_gabors(coder.components_, (patch, patch), random_state=0)
summary = summarize_gabor_fits(fit)
print(f"{summary['n_valid']} of {summary['n_atoms']} atoms fit well by a Gabor")
print(f"median nx {summary['nx_median']:.2f}, median ny {summary['ny_median']:.2f}")

fig, axes = plt.subplots(1, 3, figsize=(13, 4.3))
plot_atoms(coder.components_, (patch, patch), fit=fit, ax=axes[0])
plot_nx_ny(fit, ax=axes[1], label="WLSC")
plot_phase_histogram(fit, ax=axes[2], label="WLSC")
fig.tight_layout()
plt.show()
