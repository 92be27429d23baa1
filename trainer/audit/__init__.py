"""The security audit of a run's deployed classifier + detector at its shipped threshold (issue #11).

Attacks that know only the classifier and attacks that know the detector and its threshold,
each image's worst case over all of them, an eps sweep, TPR against perturbation size, and
false alarms under benign corruptions and on real footage. `trainer audit` and the last stage
of `trainer fit` run it; `export` ships its summary in the model's metadata.
"""
