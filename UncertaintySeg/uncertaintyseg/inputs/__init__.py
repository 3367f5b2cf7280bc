"""Inputs not prepared as the models expect: the checks, their features, the modality
classifier, broken variants."""
