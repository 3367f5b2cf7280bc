"""One case end to end: the pipeline, the prediction entry point, the case quality."""
