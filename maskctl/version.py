"""maskctl's version, in a module of its own: every module that records it (bundles, model cards,
reports, the server's metadata) names it here, not through the package's public facade
(``maskctl/__init__``, which loads the public names on use), so no import goes round in a circle."""

__version__ = "0.1.0"
