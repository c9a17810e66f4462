"""The ``opsloop`` command line: thin commands over the concern packages."""
