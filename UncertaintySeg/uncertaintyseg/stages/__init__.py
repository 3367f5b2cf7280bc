"""The method's stages: orientation, preprocessing, views and projection, uncertainty,
kernels, refinement, fusion, post-processing."""
