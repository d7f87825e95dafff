"""One package per experiment of the QRNN paper, each with its typed configuration, model builder,
data resolution and training task (what the ``quasirnn`` commands parse options into and run):

- :mod:`~quasirnn.experiments.language_model` — ``quasirnn lm`` (word-level language modelling, §3.2).
- :mod:`~quasirnn.experiments.classification` — ``quasirnn classify`` (IMDb sentiment, §3.1).
- :mod:`~quasirnn.experiments.translation` — ``quasirnn translate`` (character-level translation, §3.3).
"""
