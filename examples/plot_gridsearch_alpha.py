"""
GridSearchCV over alpha
=======================

``alpha`` trades reconstruction for locality. Its best value depends on what
the codes are for, so choose it by a downstream score. Here the codes feed a
logistic regression on digits, and :class:`~sklearn.model_selection.GridSearchCV`
picks ``alpha`` by cross-validated accuracy.

(The estimator's own ``score`` is minus the objective; it always prefers the
smallest penalty, so it is the wrong criterion for ``alpha``.)
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline

from sklearn_wlsc import WeightedL1SparseCoder

X, y = load_digits(return_X_y=True)
pipe = Pipeline(
    [
        ("coder", WeightedL1SparseCoder(n_components=32, random_state=0, tol=1e-3)),
        ("clf", LogisticRegression(max_iter=2000)),
    ]
)
alphas = [0.0, 0.05, 0.2, 0.5, 2.0]
search = GridSearchCV(pipe, {"coder__alpha": alphas}, cv=3).fit(X, y)
print("best alpha:", search.best_params_["coder__alpha"])
print(f"best cross-validated accuracy: {search.best_score_:.3f}")

mean = search.cv_results_["mean_test_score"]
std = search.cv_results_["std_test_score"]
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.errorbar(np.arange(len(alphas)), mean, yerr=std, fmt="o-")
ax.set_xticks(np.arange(len(alphas)), [str(a) for a in alphas])
ax.set_xlabel("alpha")
ax.set_ylabel("3-fold accuracy")
ax.set_title("Codes for classification: accuracy against alpha")
fig.tight_layout()
plt.show()
