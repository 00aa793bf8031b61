"""The one place pydelta's version is written.

``pyproject.toml`` reads it (``[tool.setuptools.dynamic]``) for the
distribution's metadata, and :mod:`pydelta` re-exports it as
``pydelta.__version__``. Nothing else may spell the version out.
"""

__version__ = "0.1.0"
