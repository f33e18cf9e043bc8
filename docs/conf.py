"""Sphinx configuration of fastmlp's documentation.

Build (the package must be installed, or built in place with src/ on PYTHONPATH):
    sphinx-build -W --keep-going -b html docs docs/_build/html
"""
import fastmlp

project = "fastmlp"
copyright = "2026, the fastmlp developers"
author = "the fastmlp developers"
release = fastmlp.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "generated/*.examples"]
root_doc = "index"

# one page per public object, written from the docstrings at every build (docs/generated/)
autosummary_generate = True
autodoc_default_options = {"member-order": "bysource"}
# the class template lists the methods; numpydoc's own table of them would list every
# scikit-learn method too, without pages to link to
numpydoc_show_class_members = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

html_theme = "alabaster"
html_static_path = []
html_title = f"fastmlp {release}"
