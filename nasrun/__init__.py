"""nasrun: a command-line neural-architecture-search experiment runner.

Nothing heavy happens at import time; torch is imported by the modules that need it.
"""

__version__ = "0.7.0"
