"""
The atoms as an image grid
==========================

Fit a dictionary of 64 atoms on scikit-learn's 8x8 digits and show the atoms
as images. With the locality penalty, each atom is a local average of the
samples that use it: a prototype of a digit style rather than a stroke.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

from sklearn_wlsc import WeightedL1SparseCoder

X, y = load_digits(return_X_y=True)
coder = WeightedL1SparseCoder(n_components=64, alpha=0.5, random_state=0).fit(X)
codes = coder.transform(X)
print(f"objective {coder.objective_:.1f} after {coder.n_iter_} iterations")
print(f"nonzeros per code: {(codes > 0).sum(axis=1).mean():.2f} of {codes.shape[1]}")

# order the atoms by the digit that uses them most
usage = np.array([np.bincount(y, weights=codes[:, j], minlength=10) for j in range(64)])
order = np.lexsort((-usage.max(axis=1), usage.argmax(axis=1)))

fig, axes = plt.subplots(8, 8, figsize=(6, 6))
for ax, j in zip(axes.ravel(), order):
    ax.imshow(coder.components_[j].reshape(8, 8), cmap="gray_r")
    ax.set_title(str(usage[j].argmax()), fontsize=7, pad=1)
    ax.set_axis_off()
fig.suptitle("WLSC atoms on digits (title: digit using the atom most)")
fig.tight_layout()
plt.show()
