"""Networks: building and loading, the working grid (nnU-Net's preprocessing), the
estimators, the 3D baseline, backends and devices."""
