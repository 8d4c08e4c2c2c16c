"""Sphinx configuration of the sklearn-wlsc documentation."""

import os
import sys
from datetime import date

sys.path.insert(0, os.path.abspath(".."))

import sklearn_wlsc

project = "sklearn-wlsc"
author = "the sklearn-wlsc developers"
copyright = f"{date.today().year}, {author}"
version = release = sklearn_wlsc.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.doctest",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py"]
nitpicky = True
nitpick_ignore_regex = [
    # objects of other projects: the build is offline, without intersphinx
    (r"py:.*", r"(sklearn|scipy|numpy|torch|dask|distributed|dask_ml|matplotlib|joblib)(\..*)?"),
    # numpydoc type words, not cross-reference targets
    (r"py:class", r"(array-like|ndarray|of|shape|default|int|float|str|bool|tuple|dict|list|"
     r"callable|object|None|optional|instance|RandomState|Tensor|torch\..*|dask\..*|"
     r"\{.*|.*\}|n_.*|\(.*|.*\)|m|d|k|Ignored|numpy\..*|sklearn\..*|scipy\..*|"
     r"matplotlib\..*|np\..*|nn\..*|Axes|Figure|Backend|EncodePass|GaborFit|"
     r"Bunch|path-like|file-like|.*\.\.\..*)"),
]

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": False}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

html_theme = "pydata_sphinx_theme"
html_title = "sklearn-wlsc"
html_static_path = ["_static"]
html_theme_options = {"show_toc_level": 2, "navigation_with_keys": False}

# Sphinx-Gallery: WLSC_GALLERY_PATTERN restricts which examples execute (CI
# runs a fast subset); the others are rendered without running.
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": os.environ.get("WLSC_GALLERY_PATTERN", r"/plot_"),
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "reset_modules": ("matplotlib",),
    "within_subsection_order": "FileNameSortKey",
}
