"""The ``quasirnn`` command line: one module per sub-command group, thin over the library.

``quasirnn lm train`` / ``quasirnn lm eval`` (:mod:`quasirnn.cli.lm`) train and evaluate the
word-level language model of the QRNN paper (§3.2). Entry point: :func:`quasirnn.cli.main.main`.
"""
