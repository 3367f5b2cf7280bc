"""Many cases: the cohort table and the Dask engine."""
