"""The version, in a module that imports nothing: report/* and the package root read it
from here (the root imports the report lazily; importing it back would be a circle), and
pyproject.toml takes the distribution's version from it."""
__version__ = "0.1.0"
